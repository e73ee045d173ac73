package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

func fileCache(t *testing.T, dir string) *Cache {
	t.Helper()
	src, opts, err := Build(&vault.SourceDef{Name: "files", Type: TypeFile, Config: map[string]string{"dir": dir, "ttl": "1h"}})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache("files", src, opts, nil, nil)
	t.Cleanup(c.Close)
	return c
}

func fetchString(c *Cache, key string) (string, error) {
	v, err := c.Fetch(context.Background(), key)
	return string(v.Secret.Bytes()), err
}

// TestFileRewrite: with a 1 h TTL, a rewritten file (in place, by rename,
// and by a Kubernetes-style ..data symlink swap) is served within 2 s.
func TestFileRewrite(t *testing.T) {
	cases := map[string]func(t *testing.T, dir, value string){
		"in place": func(t *testing.T, dir, value string) {
			if err := os.WriteFile(filepath.Join(dir, "token"), []byte(value+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"rename": func(t *testing.T, dir, value string) {
			tmp := filepath.Join(dir, ".tmp")
			if err := os.WriteFile(tmp, []byte(value), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "token")); err != nil {
				t.Fatal(err)
			}
		},
		"kubernetes ..data swap": func(t *testing.T, dir, value string) {
			gen := filepath.Join(dir, "..gen-"+value)
			if err := os.Mkdir(gen, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(gen, "token"), []byte(value), 0o600); err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(dir, "..data_tmp")
			if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "token")); err != nil {
				if err := os.Symlink("..data/token", filepath.Join(dir, "token")); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "file-value-one")
			c := fileCache(t, dir)
			if got, err := fetchString(c, "token"); err != nil || got != "file-value-one" {
				t.Fatalf("%q %v", got, err)
			}
			start := time.Now()
			write(t, dir, "file-value-two")
			waitFor(t, 2*time.Second, func() error {
				got, err := fetchString(c, "token")
				if err != nil || got != "file-value-two" {
					return fmt.Errorf("still %q %v", got, err)
				}
				return nil
			})
			t.Logf("new value after %s", time.Since(start))
		})
	}
}

// TestFileConfined: keys cannot leave the directory.
func TestFileConfined(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := fileCache(t, dir)
	for _, key := range []string{"../" + filepath.Base(outside) + "/secret", filepath.Join(outside, "secret"), "escape", "missing", "empty"} {
		got, err := fetchString(c, key)
		if err == nil || got != "" {
			t.Fatalf("%s: read %q", key, got)
		}
		if key == "missing" && !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	}
}
