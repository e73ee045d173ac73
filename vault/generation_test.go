package vault

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestGenerationCounts: Create writes generation 1 and every save (Update,
// passphrase change, key-file slot) adds one; Open reads it back; OnSave
// sees each new generation.
func TestGenerationCounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.vault")
	v, err := Create(path, []byte("pass"), CreateOptions{KDF: FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	v.OnSave(func(g uint64) { seen = append(seen, g) })
	want := uint64(1)
	check := func(step string) {
		t.Helper()
		if got := v.Generation(); got != want {
			t.Fatalf("%s: Generation() = %d, want %d", step, got, want)
		}
		o, err := Open(path, Unlock{Passphrase: []byte("pass")})
		if err != nil {
			t.Fatal(err)
		}
		if got := o.Generation(); got != want {
			t.Fatalf("%s: reopened at generation %d, want %d", step, got, want)
		}
	}
	check("create")
	for i := range 3 {
		mustUpdate(t, v, func(d *Data) error {
			d.SetCredential(&Credential{Path: "c", Value: NewSecret([]byte{byte(i)})})
			return nil
		})
		want++
		check("update")
	}
	if err := v.ChangePassphrase([]byte("pass")); err != nil {
		t.Fatal(err)
	}
	want++
	check("passphrase change")
	if err := v.AddKeyFile(filepath.Join(t.TempDir(), "k")); err != nil {
		t.Fatal(err)
	}
	want++
	check("key file added")
	if len(seen) != 5 || seen[0] != 2 || seen[4] != 6 {
		t.Errorf("OnSave saw %v, want [2 3 4 5 6]", seen)
	}
}

// TestOldFileIsGenerationZero: a vault written before the counter (the
// testdata fixture) opens as generation 0 and counts from there.
func TestOldFileIsGenerationZero(t *testing.T) {
	path, kf := fixtureCopy(t)
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	if g := v.Generation(); g != 0 {
		t.Fatalf("fixture opens at generation %d, want 0", g)
	}
	mustUpdate(t, v, func(*Data) error { return nil })
	if g := v.Generation(); g != 1 {
		t.Fatalf("after one save: generation %d, want 1", g)
	}
	if changed, err := v.Reload(); err != nil || changed {
		t.Fatalf("Reload of its own save: changed %v, err %v", changed, err)
	}
}

// TestRollbackRefused plays an agent running as the serve user: it copies
// the vault file from before `agent rotate bot` back into place. The
// running vault (serve) must refuse the reload and keep the rotated token;
// an Update through it must not build on the old file either.
func TestRollbackRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.vault")
	cli, err := Create(path, []byte("pass"), CreateOptions{KDF: FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	setToken := func(tok string) {
		mustUpdate(t, cli, func(d *Data) error {
			d.SetAgent(&Agent{Name: "bot", TokenHash: HashToken(tok)})
			return nil
		})
	}
	setToken("old-token")
	serve, err := Open(path, Unlock{Passphrase: []byte("pass")})
	if err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	setToken("new-token") // agent rotate bot
	if changed, err := serve.Reload(); err != nil || !changed {
		t.Fatalf("reload of the rotation: changed %v, err %v", changed, err)
	}
	held := serve.Generation()

	writeFile(t, path, before) // the rollback
	changed, err := serve.Reload()
	if !errors.Is(err, ErrRollback) || changed {
		t.Fatalf("Reload of the old file: changed %v, err %v, want ErrRollback", changed, err)
	}
	if _, ok := serve.Snapshot().AuthenticateToken("bot", "old-token"); ok {
		t.Fatal("the revoked token authenticates again after the rollback")
	}
	if _, ok := serve.Snapshot().AuthenticateToken("bot", "new-token"); !ok {
		t.Fatal("the rotated token stopped working")
	}
	if serve.Generation() != held {
		t.Fatalf("generation %d after the refused reload, want %d", serve.Generation(), held)
	}
	err = serve.Update(func(d *Data) error { return nil })
	if !errors.Is(err, ErrRollback) {
		t.Fatalf("Update over the old file: %v, want ErrRollback", err)
	}
	if string(readFile(t, path)) != string(before) {
		t.Fatal("the refused Update rewrote the file")
	}
}
