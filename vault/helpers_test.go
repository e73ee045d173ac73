package vault

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "regenerate testdata/fixture.vault and testdata/fixture.key")

// The fixture vault in testdata: FastKDF, passphrase fixturePass and the
// key file testdata/fixture.key, holding fixtureData().
const (
	fixturePass    = "airlock fixture passphrase"
	fixtureVault   = "testdata/fixture.vault"
	fixtureKey     = "testdata/fixture.key"
	fixtureSecret  = "ghp_FIXTURESECRETvalue0123456789"
	fixtureCredKey = "github/token"
)

var fixtureSeed = bytes.Repeat([]byte{1}, ed25519.SeedSize)

func fixtureData() *Data {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	d := newData()
	d.SetCredential(&Credential{Path: fixtureCredKey, Kind: KindStatic, Value: NewSecret([]byte(fixtureSecret)),
		Metadata: map[string]string{"note": "fixture"}, CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.AddDate(5, 0, 0)})
	d.SetCredential(&Credential{Path: "basic/svc", Value: NewSecret([]byte("pw")), Username: "svc", CreatedAt: t0, UpdatedAt: t0})
	d.SetAgent(&Agent{Name: "bot", PublicKey: ed25519.NewKeyFromSeed(fixtureSeed).Public().(ed25519.PublicKey),
		TokenHash: HashToken(ProxyToken(fixtureSeed)), CreatedAt: t0})
	d.System["audit.hmac"] = NewSecret(bytes.Repeat([]byte{2}, 32))
	return d
}

// TestGenerateFixture rewrites the fixture with -update; otherwise it checks
// that the committed fixture still opens with both unlock methods.
func TestGenerateFixture(t *testing.T) {
	if *update {
		_ = os.Remove(fixtureVault)
		_ = os.Remove(fixtureKey)
		v, err := Create(fixtureVault, []byte(fixturePass), CreateOptions{KDF: FastKDF, KeyFile: fixtureKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Update(func(d *Data) error { *d = *fixtureData(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for name, u := range map[string]Unlock{
		"passphrase": {Passphrase: []byte(fixturePass)},
		"key file":   {KeyFile: fixtureKey},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := Open(fixtureVault, u)
			if err != nil {
				t.Fatal(err)
			}
			assertData(t, v.Snapshot(), fixtureData())
		})
	}
}

// fixtureCopy copies the fixture vault and key file into a temp dir.
func fixtureCopy(t testing.TB) (path, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	path, keyFile = filepath.Join(dir, "airlock.vault"), filepath.Join(dir, "vault.key")
	copyFile(t, fixtureVault, path)
	copyFile(t, fixtureKey, keyFile)
	return path, keyFile
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openFixture opens a private copy of the fixture with its key file (no
// Argon2id, so it is cheap under -race).
func openFixture(t testing.TB) *Vault {
	t.Helper()
	path, kf := fixtureCopy(t)
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertData compares two Data values field by field.
func assertData(t testing.TB, got, want *Data) {
	t.Helper()
	if g, w := got.CredentialPaths(), want.CredentialPaths(); !equalStrings(g, w) {
		t.Fatalf("credential paths = %q, want %q", g, w)
	}
	for _, p := range want.CredentialPaths() {
		g, w := got.Credentials[p], want.Credentials[p]
		kind := w.Kind
		if kind == "" {
			kind = KindStatic
		}
		if g.Path != p || g.Kind != kind || !g.Value.Equal(w.Value.Bytes()) || g.Username != w.Username ||
			!g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) ||
			!equalMaps(g.Metadata, w.Metadata) {
			t.Fatalf("credential %s differs: got %+v, want %+v", p, g, w)
		}
	}
	if g, w := got.AgentNames(), want.AgentNames(); !equalStrings(g, w) {
		t.Fatalf("agent names = %q, want %q", g, w)
	}
	for _, n := range want.AgentNames() {
		g, w := got.Agents[n], want.Agents[n]
		if g.Name != n || !bytes.Equal(g.PublicKey, w.PublicKey) || !bytes.Equal(g.TokenHash, w.TokenHash) ||
			!g.CreatedAt.Equal(w.CreatedAt) || g.Disabled != w.Disabled {
			t.Fatalf("agent %s differs: got %+v, want %+v", n, g, w)
		}
	}
	if len(got.System) != len(want.System) {
		t.Fatalf("system keys: got %d, want %d", len(got.System), len(want.System))
	}
	for k, w := range want.System {
		if g, ok := got.System[k]; !ok || !g.Equal(w.Bytes()) {
			t.Fatalf("system key %s differs", k)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
