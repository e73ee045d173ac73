package vault

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateOpenRoundTrip(t *testing.T) {
	cases := map[string]struct {
		keyFile bool
		unlock  func(keyFile string) Unlock
	}{
		"passphrase":                   {unlock: func(string) Unlock { return Unlock{Passphrase: []byte("pw1")} }},
		"key file":                     {keyFile: true, unlock: func(kf string) Unlock { return Unlock{KeyFile: kf} }},
		"passphrase with key file set": {keyFile: true, unlock: func(string) Unlock { return Unlock{Passphrase: []byte("pw1")} }},
		"wrong key file, good passphrase": {keyFile: true, unlock: func(kf string) Unlock {
			return Unlock{KeyFile: kf + ".missing", Passphrase: []byte("pw1")}
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path, kf := filepath.Join(dir, "v"), ""
			if tc.keyFile {
				kf = filepath.Join(dir, "k")
			}
			v, err := Create(path, []byte("pw1"), CreateOptions{KDF: FastKDF, KeyFile: kf})
			if err != nil {
				t.Fatal(err)
			}
			want := fixtureData()
			if err := v.Update(func(d *Data) error { *d = *want.Clone(); return nil }); err != nil {
				t.Fatal(err)
			}
			assertData(t, v.Snapshot(), want)
			assertMode(t, path, 0o600)
			if tc.keyFile {
				assertMode(t, kf, 0o600)
			}
			v2, err := Open(path, tc.unlock(kf))
			if err != nil {
				t.Fatal(err)
			}
			assertData(t, v2.Snapshot(), want)
			if v2.Path() != path || time.Since(v2.LoadedAt()) > time.Minute {
				t.Fatalf("Path %q LoadedAt %v", v2.Path(), v2.LoadedAt())
			}
		})
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func TestOpenErrors(t *testing.T) {
	path, kf := fixtureCopy(t)
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(badKey, []byte("not hex at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "other.key")
	if _, err := loadOrCreateKeyFile(otherKey); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		path    string
		unlock  Unlock
		want    error
		message string
	}{
		"wrong passphrase":       {path: path, unlock: Unlock{Passphrase: []byte("nope")}, want: ErrWrongPassphrase},
		"wrong key file":         {path: path, unlock: Unlock{KeyFile: otherKey}, want: ErrWrongPassphrase},
		"both wrong":             {path: path, unlock: Unlock{KeyFile: otherKey, Passphrase: []byte("x")}, want: ErrWrongPassphrase},
		"malformed key file":     {path: path, unlock: Unlock{KeyFile: badKey}, want: ErrBadKeyFile},
		"missing key file":       {path: path, unlock: Unlock{KeyFile: filepath.Join(dir, "none")}, want: fs.ErrNotExist},
		"no unlock":              {path: path, want: ErrNoUnlock},
		"missing vault":          {path: filepath.Join(dir, "missing"), unlock: Unlock{KeyFile: kf}, want: fs.ErrNotExist},
		"directory":              {path: dir, unlock: Unlock{KeyFile: kf}, message: "is a directory"},
		"not a vault":            {path: badKey, unlock: Unlock{KeyFile: kf}, want: ErrCorrupt, message: "bad magic"},
		"key file given as path": {path: kf, unlock: Unlock{KeyFile: kf}, want: ErrCorrupt},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := readFile(t, path)
			_, err := Open(tc.path, tc.unlock)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q lacks %q", err, tc.message)
			}
			assertNoSecret(t, err.Error())
			if !bytes.Equal(before, readFile(t, path)) {
				t.Fatal("vault file changed")
			}
		})
	}
}

// assertNoSecret fails if s contains any fixture secret or passphrase.
func assertNoSecret(t testing.TB, s string) {
	t.Helper()
	kf := strings.TrimSpace(string(readFile(t, fixtureKey)))
	for _, secret := range []string{fixtureSecret, fixturePass, kf} {
		if strings.Contains(s, secret) {
			t.Fatalf("output leaks a secret: %q", s)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.WriteFile(existing, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		path string
		pass string
		opts CreateOptions
		want error
	}{
		"existing file":      {path: existing, pass: "p", opts: CreateOptions{KDF: FastKDF}, want: ErrExists},
		"existing directory": {path: dir, pass: "p", opts: CreateOptions{KDF: FastKDF}, want: ErrExists},
		"empty passphrase":   {path: filepath.Join(dir, "a"), opts: CreateOptions{KDF: FastKDF}, want: ErrNoUnlock},
		"kdf too weak":       {path: filepath.Join(dir, "b"), pass: "p", opts: CreateOptions{KDF: KDFParams{MemoryKiB: 1024, Time: 1, Parallelism: 1}}},
		"missing directory":  {path: filepath.Join(dir, "no", "v"), pass: "p", opts: CreateOptions{KDF: FastKDF}, want: fs.ErrNotExist},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Create(tc.path, []byte(tc.pass), tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Create error %v, want %v", err, tc.want)
			}
		})
	}
	if b := readFile(t, existing); string(b) != "x" {
		t.Fatal("existing file overwritten")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(m) != 0 {
		t.Fatalf("temp files left behind: %q", m)
	}
}

func TestDataNotFound(t *testing.T) {
	d := openFixture(t).Snapshot()
	if _, err := d.Credential("nope/x"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope/x") {
		t.Fatalf("Credential error %v", err)
	}
	if _, err := d.Agent("ghost"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("Agent error %v", err)
	}
	c := d.Clone()
	if err := c.DeleteCredential("nope/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteCredential error %v", err)
	}
	if err := c.DeleteAgent("ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteAgent error %v", err)
	}
	cred, err := d.Credential(fixtureCredKey)
	if err != nil || !cred.Value.Equal([]byte(fixtureSecret)) {
		t.Fatalf("Credential %v %v", cred, err)
	}
}

func TestUpdate(t *testing.T) {
	v := openFixture(t)
	before := v.Snapshot()
	errStop := errors.New("stop")
	cases := map[string]struct {
		fn      func(d *Data) error
		wantErr error
		check   func(t *testing.T, d *Data)
	}{
		"set credential": {
			fn: func(d *Data) error {
				d.SetCredential(&Credential{Path: "new/one", Value: NewSecret([]byte("v1"))})
				return nil
			},
			check: func(t *testing.T, d *Data) {
				c, err := d.Credential("new/one")
				if err != nil || c.Kind != KindStatic || !c.Value.Equal([]byte("v1")) {
					t.Fatalf("got %+v, %v", c, err)
				}
			},
		},
		"delete credential": {
			fn: func(d *Data) error { return d.DeleteCredential("basic/svc") },
			check: func(t *testing.T, d *Data) {
				if _, err := d.Credential("basic/svc"); !errors.Is(err, ErrNotFound) {
					t.Fatal("still there")
				}
			},
		},
		"disable agent": {
			fn: func(d *Data) error { d.Agents["bot"].Disabled = true; return nil },
			check: func(t *testing.T, d *Data) {
				if _, ok := d.AuthenticateToken("bot", ProxyToken(fixtureSeed)); ok {
					t.Fatal("disabled agent authenticated")
				}
			},
		},
		"fn error saves nothing": {fn: func(d *Data) error { d.Credentials = nil; return errStop }, wantErr: errStop},
		"path mismatch refused": {
			fn: func(d *Data) error {
				d.Credentials["a"] = &Credential{Path: "b"}
				return nil
			},
			wantErr: nil, // any error
		},
		"nil credential refused": {fn: func(d *Data) error { d.Credentials["x"] = nil; return nil }},
		"bad public key refused": {fn: func(d *Data) error { d.SetAgent(&Agent{Name: "z", PublicKey: []byte{1}}); return nil }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			file := readFile(t, v.Path())
			snap := v.Snapshot()
			err := v.Update(tc.fn)
			if tc.check == nil { // expect failure and no change
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("Update error %v, want %v", err, tc.wantErr)
				}
				if !bytes.Equal(file, readFile(t, v.Path())) || v.Snapshot() != snap {
					t.Fatal("failed update changed the vault")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v.Snapshot())
			v2, err := Open(v.Path(), Unlock{KeyFile: filepath.Join(filepath.Dir(v.Path()), "vault.key")})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v2.Snapshot())
		})
	}
	assertData(t, before, fixtureData()) // snapshots are immutable
}

func TestConcurrentUpdatesInProcess(t *testing.T) {
	path, kf := fixtureCopy(t)
	const n = 4
	handles := make([]*Vault, n)
	for i := range handles {
		v, err := Open(path, Unlock{KeyFile: kf})
		if err != nil {
			t.Fatal(err)
		}
		handles[i] = v
	}
	var wg sync.WaitGroup
	errs := make(chan error, n*5)
	for i, v := range handles {
		for j := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := fmt.Sprintf("g%d/c%d", i, j)
				errs <- v.Update(func(d *Data) error {
					d.SetCredential(&Credential{Path: p, Value: NewSecret([]byte(p))})
					return nil
				})
				_ = v.Snapshot().CredentialPaths() // races with Update under -race
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(v.Snapshot().Credentials); got != 2+n*5 {
		t.Fatalf("%d credentials, want %d", got, 2+n*5)
	}
}
