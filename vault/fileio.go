package vault

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// readVaultFile reads the whole vault file, refusing directories and files
// larger than maxFileSize before allocating.
func readVaultFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, err // *PathError: names the path, wraps fs.ErrNotExist
	case fi.IsDir():
		return nil, fmt.Errorf("%s is a directory, not a vault file", path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError: names the path, wraps fs.ErrNotExist
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s: %d bytes exceeds the %d byte limit: %w", path, fi.Size(), maxFileSize, ErrCorrupt)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(raw) > maxFileSize {
		return nil, fmt.Errorf("%s: grew past the %d byte limit: %w", path, maxFileSize, ErrCorrupt)
	}
	return raw, nil
}

// writeTemp writes raw to a new 0600 temp file next to path and fsyncs it.
// On error nothing is left behind.
func writeTemp(path string, raw []byte) (tmp string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", err
	}
	if _, err := f.Write(raw); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// WriteFile replaces path with data, mode perm, the way the vault itself
// is saved: a temp file in the same directory, fsync, rename, fsync the
// directory. A crash leaves the old file or the new one, never a mix or
// nothing. airlock's other state files (the home's CA and policy files,
// approvals, usage, source status) are written with it too.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAtomic replaces path with raw: temp file, fsync, rename, fsync the
// directory. A crash leaves the old file or the new one, never a mix.
func writeAtomic(path string, raw []byte) error {
	tmp, err := writeTemp(path, raw)
	if err != nil {
		return fmt.Errorf("save vault %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save vault %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("save vault %s: %w", path, err)
	}
	return nil
}

// createExclusive writes raw at path only if nothing is there: the temp
// file is hard-linked into place, which fails atomically if path exists.
func createExclusive(path string, raw []byte) error {
	tmp, err := writeTemp(path, raw)
	if err != nil {
		return fmt.Errorf("create vault %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create vault %s: %w", path, ErrExists)
		}
		return fmt.Errorf("create vault %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create vault %s: %w", path, err)
	}
	return nil
}

// removeStaleTemps deletes temp files that a crashed save left next to
// path. Callers hold the file lock, so no save is in progress.
func removeStaleTemps(path string) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	prefix := filepath.Base(path) + ".tmp-"
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
