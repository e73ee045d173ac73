package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/airlock/airlock/vault"
	"github.com/fsnotify/fsnotify"
)

// FileConfig is a directory of secret files (a mounted Kubernetes Secret,
// a systemd credentials directory): key is a file name inside Dir.
type FileConfig struct {
	Dir       string
	FirstLine bool // keep only the first line
}

// maxFileSize bounds a secret file.
const maxFileSize = 64 << 10

// File is a [Source], [Checker] and [Watcher]: it watches Dir with
// fsnotify and tells the cache to drop its values on any change (a
// rewrite, a rename, Kubernetes' ..data symlink swap).
type File struct {
	cfg FileConfig
	w   *fsnotify.Watcher
	wg  sync.WaitGroup

	// mu guards subs.
	mu   sync.Mutex
	subs []func(key string)
}

// NewFile starts watching cfg.Dir. Close stops it.
func NewFile(cfg FileConfig) (*File, error) {
	if cfg.Dir == "" {
		return nil, errors.New("file: no directory")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	cfg.Dir = dir
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("file: watch %s: %w", dir, err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("file: watch %s: %w", dir, err)
	}
	f := &File{cfg: cfg, w: w}
	f.wg.Add(1)
	go f.watch()
	return f, nil
}

// watch forwards every event in the directory as "drop everything": a
// Kubernetes update renames a directory, not the file itself.
func (f *File) watch() {
	defer f.wg.Done()
	for {
		select {
		case _, ok := <-f.w.Events:
			if !ok {
				return
			}
			f.notify()
		case _, ok := <-f.w.Errors:
			if !ok {
				return
			}
			f.notify() // an overflow may have lost events
		}
	}
}

func (f *File) notify() {
	f.mu.Lock()
	subs := append([]func(string){}, f.subs...)
	f.mu.Unlock()
	for _, fn := range subs {
		fn("")
	}
}

// OnChange registers fn, called with "" after any change in the directory.
func (f *File) OnChange(fn func(key string)) {
	f.mu.Lock()
	f.subs = append(f.subs, fn)
	f.mu.Unlock()
}

// Close stops watching.
func (f *File) Close() error {
	err := f.w.Close()
	f.wg.Wait()
	return err
}

// Check reports whether the directory is readable.
func (f *File) Check(context.Context) error {
	if _, err := os.ReadDir(f.cfg.Dir); err != nil {
		return fmt.Errorf("file: %v: %w", err, ErrUnavailable)
	}
	return nil
}

// Fetch reads the file key (KEY#FIELD: a JSON file's field) in the
// directory. Absolute paths, "..", and symlinks out of the directory are
// refused.
func (f *File) Fetch(_ context.Context, skey string) (Value, error) {
	key, field, version, err := ParseKey(skey)
	if err != nil || version != 0 || !fs.ValidPath(key) || strings.HasPrefix(key, "..") {
		return Value{}, fmt.Errorf("file: key %q: want a relative file name inside the directory: %w", skey, ErrNotFound)
	}
	root, err := os.OpenRoot(f.cfg.Dir)
	if err != nil {
		return Value{}, fmt.Errorf("file: %v: %w", err, ErrUnavailable)
	}
	defer root.Close()
	fh, err := root.Open(key)
	if errors.Is(err, fs.ErrNotExist) {
		return Value{}, fmt.Errorf("file: no file %q in %s: %w", key, f.cfg.Dir, ErrNotFound)
	}
	if err != nil {
		return Value{}, fmt.Errorf("file: open %q: %w", key, withClass(err, ErrUnavailable))
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return Value{}, fmt.Errorf("file: read %q: %v: %w", key, err, ErrUnavailable)
	}
	if len(b) > maxFileSize {
		return Value{}, fmt.Errorf("file: %q is larger than %d bytes: %w", key, maxFileSize, ErrUnavailable)
	}
	if f.cfg.FirstLine {
		b, _, _ = bytes.Cut(b, []byte("\n"))
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if field != "" {
		if b, err = jsonField(b, field); err != nil {
			return Value{}, fmt.Errorf("file: %q: %w", key, err)
		}
	}
	if len(b) == 0 {
		return Value{}, fmt.Errorf("file: %q is empty: %w", key, ErrNotFound)
	}
	return Value{Secret: vault.NewSecret(b), Kind: vault.KindStatic}, nil
}
