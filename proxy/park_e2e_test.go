package proxy_test

import (
	"bufio"
	"net/url"
	"strings"
	"testing"
	"time"
)

// An idle MITM'd tunnel waits for its next request without a goroutine
// (proxy/internal/h1, park.go): nothing reads it, so nothing would notice
// a Close from elsewhere. Revoking its agent must still close it at once
// and give its connection slot back (with a cap of one connection, the
// re-keyed agent's next CONNECT is refused 429 while the slot is held).
func TestRevokeParkedTunnel(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil, "--max-conns-per-agent", "1", "--pprof")

	tc := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	br := bufio.NewReader(tc)
	if st, _, err := tunnelGet(tc, br, up.hostPort(), "/bearer/before"); err != nil || st != 200 {
		t.Fatalf("before revoke: %d %v", st, err)
	}
	waitNoIdleReader(t, e) // parked: no goroutine waits for the next request
	if code, m := e.adminGet("/metrics"); code != 200 || !strings.Contains(m, "\nairlock_parked_connections 1\n") {
		t.Fatalf("/metrics: %d, want airlock_parked_connections 1:\n%s", code, grepLines(m, "parked"))
	}

	newAgent, err := url.Parse(strings.TrimSpace(e.mustRun("", "agent", "rotate", "bot")))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	took := closedWithin(t, tc, br, t0, revokeWithin)
	t.Logf("parked tunnel closed %v after rotate", took)

	for deadline := time.Now().Add(2 * time.Second); ; {
		resp, c, _ := rawConnect(t, e.proxyAddr, up.hostPort(), agentAuth(newAgent))
		_ = c.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CONNECT after the revocation: %d, want 200 (the parked tunnel's slot was never given back)", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitNoIdleReader waits until no goroutine of airlock's lean loop is
// waiting for a request (the idle tunnels are parked).
func waitNoIdleReader(t *testing.T, e *env) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		code, prof := e.adminGet("/debug/pprof/goroutine?debug=1")
		if code != 200 || !strings.Contains(prof, "goroutine profile:") {
			t.Fatalf("goroutine profile: %d %.200s", code, prof)
		}
		if !strings.Contains(prof, "h1.(*innerConn).waitRequest") && !strings.Contains(prof, "h1.(*innerConn).idleRead") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine still waits for the idle tunnel's next request after 5s:\n%s", prof)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
