package vault

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// A key file holds 32 random bytes as 64 hex characters and a newline.
const (
	keyFileSize    = 32
	maxKeyFileRead = 256
)

// ErrBadKeyFile is returned when a key file does not hold 64 hex characters.
var ErrBadKeyFile = errors.New("key file must hold 64 hex characters")

// readKeyFile reads and decodes a key file. Errors never echo its content.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileRead))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return parseKeyFile(path, b)
}

func parseKeyFile(path string, b []byte) ([]byte, error) {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) != 2*keyFileSize {
		return nil, fmt.Errorf("key file %s: %w", path, ErrBadKeyFile)
	}
	kf, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, ErrBadKeyFile)
	}
	return kf, nil
}

// loadOrCreateKeyFile reads the key file at path, creating it (mode 0600,
// fresh random key) when it does not exist.
func loadOrCreateKeyFile(path string) ([]byte, error) {
	kf, err := randomBytes(keyFileSize)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(kf) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write key file %s: %w", path, err)
	}
	return kf, nil
}
