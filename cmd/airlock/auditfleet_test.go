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

// writeReplicaAudit writes n audit lines of replica's chain.
func writeReplicaAudit(t *testing.T, e *tenv, path, replica string, n int) {
	t.Helper()
	v, err := vault.Open(e.vaultPath(), vault.Unlock{Passphrase: []byte(testPassphrase)})
	must(t, err)
	a, err := audit.Open(audit.Options{Path: path, Key: v.Snapshot().System[sysAuditHMAC].Bytes(), Replica: replica})
	must(t, err)
	for i := range n {
		a.Write(audit.Line{Agent: "bot", Rule: "r", Decision: "inject", Method: "GET", Host: "api.example.com:443",
			Path: fmt.Sprintf("/v1/%s/%d", replica, i), Status: 200, Code: "OK", Door: "proxy"})
	}
	must(t, a.Close())
}

// TestAuditVerifyReplicas: `airlock audit verify` given several replicas'
// files (fleet mode) checks each replica's chain on its own, in any
// interleaving of the arguments; a line moved from one replica's file into
// another's fails, naming both replicas; --from is refused across chains.
func TestAuditVerifyReplicas(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "r0.log"), filepath.Join(dir, "r1.log")
	writeReplicaAudit(t, e, a, "r0", 4)
	writeReplicaAudit(t, e, b, "r1", 3)
	for _, args := range [][]string{{a, b}, {b, a}} {
		r := e.ok("", append([]string{"audit", "verify"}, args...)...)
		if got := strings.TrimSpace(r.stdout); !strings.HasPrefix(got, "ok 7 lines (replica ") || !strings.Contains(got, "r0: 4") || !strings.Contains(got, "r1: 3") {
			t.Fatalf("two replicas %v:\n%s", args, r)
		}
	}
	wantError(t, e.run("", "audit", "verify", "--from", "2", a, b), exitUsage, "2 replicas' chains")

	// Move r1's second line into r0's file, in place of r0's second line:
	// its mac is valid (same vault key) but it is not r0's.
	la := strings.SplitAfter(readFile(t, a), "\n")
	lb := strings.SplitAfter(readFile(t, b), "\n")
	la[1] = lb[1]
	must(t, os.WriteFile(a, []byte(strings.Join(la, "")), 0o600))
	r := e.run("", "audit", "verify", a, b)
	if r.code != exitFailure || !strings.Contains(r.stderr, a+":2: line of replica \"r1\" inside the chain of replica \"r0\"") {
		t.Fatalf("spliced line:\n%s", r)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}
