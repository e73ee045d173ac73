package vault

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReload(t *testing.T) {
	path, kf := fixtureCopy(t)
	reader, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	writer, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	good := readFile(t, path)
	steps := []struct {
		name        string
		act         func(t *testing.T)
		wantChanged bool
		wantErr     error
		wantCred    bool // "new/cred" visible in reader's snapshot
	}{
		{name: "unchanged file", act: func(*testing.T) {}},
		{name: "other handle updates", wantChanged: true, wantCred: true, act: func(t *testing.T) {
			mustUpdate(t, writer, func(d *Data) error {
				d.SetCredential(&Credential{Path: "new/cred", Value: NewSecret([]byte("x"))})
				return nil
			})
		}},
		{name: "passphrase changed elsewhere", wantCred: true, act: func(t *testing.T) {
			if err := writer.ChangePassphrase([]byte("new pass")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "tampered file keeps old snapshot", wantErr: ErrCorrupt, wantCred: true, act: func(t *testing.T) {
			b := readFile(t, path)
			b[len(b)/2] ^= 1
			writeFile(t, path, b)
		}},
		{name: "foreign vault keeps old snapshot", wantErr: ErrCorrupt, wantCred: true, act: func(t *testing.T) {
			writeFile(t, path, good) // same format, but readable: data key matches
			other := filepath.Join(t.TempDir(), "other")
			if _, err := Create(other, []byte("p"), CreateOptions{KDF: FastKDF}); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, readFile(t, other))
		}},
		{name: "missing file", wantErr: os.ErrNotExist, wantCred: true, act: func(t *testing.T) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		// The original is older than what the writer saved since: a rollback.
		{name: "original restored is refused", wantErr: ErrRollback, wantCred: true, act: func(t *testing.T) { writeFile(t, path, good) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.act(t)
			before := reader.LoadedAt()
			changed, err := reader.Reload()
			if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
				t.Fatalf("Reload error %v, want %v", err, st.wantErr)
			}
			if changed != st.wantChanged {
				t.Fatalf("changed = %v, want %v", changed, st.wantChanged)
			}
			if _, err := reader.Snapshot().Credential("new/cred"); (err == nil) != st.wantCred {
				t.Fatalf("new/cred present = %v, want %v", err == nil, st.wantCred)
			}
			if st.wantErr == nil && reader.LoadedAt().Before(before) {
				t.Fatal("LoadedAt went backwards")
			}
		})
	}
}

func mustUpdate(t *testing.T, v *Vault, fn func(d *Data) error) {
	t.Helper()
	if err := v.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestChangePassphraseAndAddKeyFile(t *testing.T) {
	path, kf := fixtureCopy(t)
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ChangePassphrase(nil); !errors.Is(err, ErrNoUnlock) {
		t.Fatalf("empty passphrase: %v", err)
	}
	if err := v.ChangePassphrase([]byte("second")); err != nil {
		t.Fatal(err)
	}
	kf2 := filepath.Join(t.TempDir(), "new.key")
	if err := v.AddKeyFile(kf2); err != nil {
		t.Fatal(err)
	}
	assertMode(t, kf2, 0o600)
	cases := map[string]struct {
		unlock Unlock
		want   error
	}{
		"new passphrase":            {unlock: Unlock{Passphrase: []byte("second")}},
		"old passphrase refused":    {unlock: Unlock{Passphrase: []byte(fixturePass)}, want: ErrWrongPassphrase},
		"new key file":              {unlock: Unlock{KeyFile: kf2}},
		"replaced key file refused": {unlock: Unlock{KeyFile: kf}, want: ErrWrongPassphrase},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v2, err := Open(path, tc.unlock)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Open error %v, want %v", err, tc.want)
			}
			if err == nil {
				assertData(t, v2.Snapshot(), fixtureData())
			}
		})
	}
}

func TestKeyFileFormat(t *testing.T) {
	key := bytes.Repeat([]byte("ab"), 32)
	cases := map[string]struct {
		content string
		ok      bool
	}{
		"newline":        {content: string(key) + "\n", ok: true},
		"crlf":           {content: string(key) + "\r\n", ok: true},
		"no newline":     {content: string(key), ok: true},
		"short":          {content: string(key[:62]) + "\n"},
		"long":           {content: string(key) + "ab\n"},
		"not hex":        {content: string(key[:62]) + "zz\n"},
		"leading spaces": {content: "  " + string(key)},
		"empty":          {content: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kf, err := parseKeyFile("k", []byte(tc.content))
			if (err == nil) != tc.ok {
				t.Fatalf("parseKeyFile error %v, ok want %v", err, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrBadKeyFile) || bytes.Contains([]byte(err.Error()), key[:8])) {
				t.Fatalf("error %q", err)
			}
			if tc.ok && len(kf) != 32 {
				t.Fatalf("key is %d bytes", len(kf))
			}
		})
	}
}
