package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/vault"
)

// writeHomeAudit writes n audit lines signed with the home's audit key.
func writeHomeAudit(t *testing.T, e *tenv, path string, n int) {
	t.Helper()
	v, err := vault.Open(e.vaultPath(), vault.Unlock{Passphrase: []byte(testPassphrase)})
	must(t, err)
	a, err := audit.Open(audit.Options{Path: path, Key: v.Snapshot().System[sysAuditHMAC].Bytes()})
	must(t, err)
	for i := range n {
		a.Write(audit.Line{Agent: "bot", Rule: "r", Decision: "inject", Method: "GET", Host: "api.example.com:443",
			Path: fmt.Sprintf("/v1/%d", i), Status: 200, Code: "OK", Door: "proxy"})
	}
	must(t, a.Close())
}

// TestAuditVerifyHeadDeleted: `airlock audit verify` of a log whose first
// lines were deleted fails naming the first line left, with a hint for
// --from / --after; --from with the right seq verifies.
func TestAuditVerifyHeadDeleted(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	log := filepath.Join(t.TempDir(), "audit.log")
	writeHomeAudit(t, e, log, 6)
	if r := e.ok("", "audit", "verify", log); strings.TrimSpace(r.stdout) != "ok 6 lines" {
		t.Fatalf("untouched log:\n%s", r)
	}
	b, err := os.ReadFile(log)
	must(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	must(t, os.WriteFile(log, []byte(strings.Join(lines[2:], "")), 0o600))

	r := e.run("", "audit", "verify", log)
	if r.code != exitFailure || !strings.Contains(r.stderr, "airlock: error: "+log+":1: first line is seq 3") ||
		!strings.Contains(r.stderr, "airlock: hint: ") || !strings.Contains(r.stderr, "--from") {
		t.Fatalf("head lines deleted:\n%s", r)
	}
	if r := e.ok("", "audit", "verify", "--from", "3", log); strings.TrimSpace(r.stdout) != "ok 4 lines" {
		t.Fatalf("--from 3:\n%s", r)
	}
	wantError(t, e.run("", "audit", "verify", "--from", "2", log), exitFailure, "want seq 2")
	wantError(t, e.run("", "audit", "verify", "--from", "3", "--after", log, log), exitUsage, "not both")
}
