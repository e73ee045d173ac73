package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestFleetApprovalE2E: a request held on replica A is listed and approved
// through replica B (its admin API, the real CLI); A releases it within
// 1 s of the approve command returning, with the credential injected.
func TestFleetApprovalE2E(t *testing.T) {
	r := startRedisE2E(t)
	base := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "")
	f := newFleet(t, base.env, r, 2)
	f.serveAll()
	A, B := f.replicas[0], f.replicas[1]
	agent, _ := url.Parse(base.agent)
	c := A.client(agent)
	c.Timeout = 90 * time.Second
	res := base.getAsync(c, base.up.URL+"/v1/held")
	var id string
	waitFor(t, 20*time.Second, func() error {
		out := B.mustRun("", "approvals", "--json", "--admin", B.adminAddr)
		var doc struct {
			Pending []map[string]any `json:"pending"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			return fmt.Errorf("approvals --json on B: %v", err)
		}
		if len(doc.Pending) != 1 {
			return fmt.Errorf("B lists %d pending, want the 1 held on A", len(doc.Pending))
		}
		id, _ = doc.Pending[0]["id"].(string)
		return nil
	})
	if base.hits.Load() != 0 {
		t.Fatal("upstream reached while held")
	}
	B.mustRun("", "approvals", "approve", id, "--once", "--admin", B.adminAddr)
	approved := time.Now()
	select {
	case got := <-res:
		if got.err != nil || got.status != 200 || got.seen.Auth != digest("Bearer "+heldSecret) {
			t.Fatalf("released on A: %d %v %s", got.status, got.err, got.body)
		}
		if d := got.at.Sub(approved); d > time.Second {
			t.Fatalf("A released the request %v after B's approval, want within 1s", d)
		} else {
			t.Logf("A released %v after B's approval", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("A still holds the request 5s after B's approval\nA logs:\n%s", grepLines(A.logs.String(), "approv"))
	}
}
