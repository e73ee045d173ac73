package main

import (
	"os"
	"strings"
	"testing"
)

// TestRollbackWarning plays an agent that copies an old airlock.vault back
// (from before `agent add bot`): the next CLI command warns that the
// generation went backwards, with a hint, and keeps warning; a fresh
// `init` after the vault was deleted does not warn.
func TestRollbackWarning(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	old, err := os.ReadFile(e.vaultPath())
	must(t, err)
	e.ok("", "agent", "add", "bot")
	if r := e.ok("", "agent", "list"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("warning without a rollback:\n%s", r)
	}
	must(t, os.WriteFile(e.vaultPath(), old, 0o600))
	for range 2 {
		r := e.ok("", "agent", "list")
		if !strings.Contains(r.stderr, "airlock: warning: ") || !strings.Contains(r.stderr, "generation") ||
			!strings.Contains(r.stderr, "airlock: hint: restore the newest airlock.vault") {
			t.Fatalf("no rollback warning after the old vault was copied back:\n%s", r)
		}
		if strings.Contains(r.stdout, "bot") {
			t.Fatalf("the old vault should not list bot:\n%s", r)
		}
	}
	must(t, os.Remove(e.vaultPath()))
	must(t, os.Remove(e.home+"/ca.pem"))
	if r := e.ok("", "init"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("init of a new vault warned:\n%s", r)
	}
	if r := e.ok("", "agent", "list"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("warning on a new vault:\n%s", r)
	}
}
