package stack

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/approval"
)

// TestApprovalsFollowReload: after a policy swap the queue uses the new
// webhook (the old one hears nothing more) and the console feed gets the
// approval's audit line.
func TestApprovalsFollowReload(t *testing.T) {
	var oldHits, newHits atomic.Int64
	oldHook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { oldHits.Add(1) }))
	defer oldHook.Close()
	newHook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { newHits.Add(1) }))
	defer newHook.Close()
	o := parts(t)
	pol := func(url string) *policy.Policy {
		p, err := policy.Parse("p.yaml", []byte("version: 1\napprovals:\n  timeout: 1s\n  webhook: "+url+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	o.Policy = pol(oldHook.URL)
	st, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := StartApprovals(st.Server, ApprovalOptions{Home: dir, PolicyPath: filepath.Join(dir, "policy.yaml"),
		AdminToken: "alk_admin_0123456789abcdef", AdminURL: "http://127.0.0.1:1", PolicyPoll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Console == nil {
		t.Fatal("no console with an admin token")
	}
	req := approval.Request{Agent: "bot", Rule: "r", Method: "GET", Host: "h:443", Path: "/"}
	if _, err := a.Queue.Wait(context.Background(), req); err == nil {
		t.Fatal("Wait without a decision succeeded")
	}
	waitTrue(t, func() bool { return oldHits.Load() == 1 })
	st.Server.SetPolicy(pol(newHook.URL))
	waitTrue(t, func() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.hookURL == newHook.URL })
	if _, err := a.Queue.Wait(context.Background(), req); err == nil {
		t.Fatal("Wait without a decision succeeded")
	}
	waitTrue(t, func() bool { return newHits.Load() == 1 })
	if oldHits.Load() != 1 {
		t.Fatalf("old webhook heard %d entries", oldHits.Load())
	}
	waitTrue(t, func() bool {
		for _, e := range a.Feed.Recent("", 100) {
			if e.Decision == "approval_timeout" && e.Code == "APPROVAL_TIMEOUT" {
				return true
			}
		}
		return false
	})
}

func waitTrue(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
