package main

import (
	"os"
	"strings"
	"testing"

	"github.com/airlock/airlock/vault"
)

// TestAdminTokenCommand: init puts an admin token in the vault (not in a
// file of the home), `admin token` prints it, --rotate replaces it, and a
// home made before admin tokens gets one from ensureAdminToken (serve).
func TestAdminTokenCommand(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	tok := strings.TrimSpace(e.ok("", "admin", "token").stdout)
	if !strings.HasPrefix(tok, "alk_admin_") || len(tok) != len("alk_admin_")+2*adminTokenBytes {
		t.Fatalf("admin token %q", tok)
	}
	if again := strings.TrimSpace(e.ok("", "admin", "token").stdout); again != tok {
		t.Fatal("admin token changed between calls")
	}
	entries, err := os.ReadDir(e.home)
	must(t, err)
	for _, de := range entries {
		if de.IsDir() {
			continue
		}
		b, err := os.ReadFile(e.home + "/" + de.Name())
		must(t, err)
		if strings.Contains(string(b), tok) {
			t.Fatalf("the admin token is in plain text in %s", de.Name())
		}
	}
	rotated := strings.TrimSpace(e.ok("", "admin", "token", "--rotate").stdout)
	if rotated == tok || !strings.HasPrefix(rotated, "alk_admin_") {
		t.Fatalf("rotate printed %q", rotated)
	}
	// Without the passphrase (an agent under `airlock run`) there is no token.
	delete(e.env, "AIRLOCK_PASSPHRASE")
	if r := e.run("", "admin", "token"); r.code == 0 || strings.Contains(r.stdout, rotated) {
		t.Fatalf("admin token without the passphrase: %s", r)
	}
}

func TestEnsureAdminTokenOldHome(t *testing.T) {
	t.Parallel()
	v, err := vault.Create(t.TempDir()+"/v", []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	must(t, err)
	if adminTokenOf(v) != "" {
		t.Fatal("a new vault has a token")
	}
	tok, err := ensureAdminToken(v)
	must(t, err)
	if tok == "" || adminTokenOf(v) != tok {
		t.Fatalf("ensure = %q", tok)
	}
	again, err := ensureAdminToken(v)
	must(t, err)
	if again != tok {
		t.Fatal("ensure replaced an existing token")
	}
}
