package proxy_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const outageOAuthPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: rotating
    host: "{{UP}}"
    paths: ["/x/rt/**"]
    credential: graph/app
    inject: {type: oauth2}
  - name: client
    host: "{{UP}}"
    paths: ["/x/cc/**"]
    credential: graph/cc
    inject: {type: oauth2}
`

// TestFleetOAuth2OutageE2E: Redis down and both access tokens expired, a
// client_credentials token is fetched locally (nothing to spoil) while a
// rotating refresh token is not spent: CREDENTIAL_SOURCE_UNAVAILABLE, the
// token endpoint never sees it. Redis back, the refresh goes through.
func TestFleetOAuth2OutageE2E(t *testing.T) {
	r := startRedisE2E(t)
	ts := newTokenServer(t, 1, "rt-initial-0")
	var hits atomic.Int32
	up := newUpstream(t, ts.protected(&hits))
	base := newEnv(t)
	base.upCAFile = up.caFile(t)
	secretFile := t.TempDir() + "/client-secret"
	if err := os.WriteFile(secretFile, []byte(oauthClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base.mustRun("rt-initial-0\n", "vault", "set-oauth2", "graph/app", "--grant", "refresh_token", "--token-url", ts.URL+"/token",
		"--client-id", oauthClientID, "--client-secret-file", secretFile)
	base.mustRun(oauthClientSecret+"\n", "vault", "set-oauth2", "graph/cc", "--token-url", ts.URL+"/token", "--client-id", oauthClientID)
	agent := base.addAgent("bot")
	base.writePolicy(strings.ReplaceAll(outageOAuthPolicy, "{{UP}}", up.hostPort()))
	e := newFleet(t, base, r, 1).replicas[0]
	e.serve()
	c := e.client(agent)
	call := func(path string) (int, string) {
		t.Helper()
		status, hdr, _ := agentCall(t, c, "GET", up.URL+path, "")
		return status, hdr.Get("X-Airlock-Error")
	}
	for _, p := range []string{"/x/rt/me", "/x/cc/me"} {
		if s, code := call(p); s != 200 {
			t.Fatalf("%s with redis up: %d %s", p, s, code)
		}
	}
	ts.mu.Lock()
	spent := ts.refresh
	ts.mu.Unlock()

	r.kill()
	expired := time.Now().Add(1200 * time.Millisecond)
	waitFor(t, 5*time.Second, func() error {
		if time.Now().Before(expired) {
			return errNotYet
		}
		return nil
	})
	before := ts.requests.Load()
	if s, code := call("/x/cc/me"); s != 200 {
		t.Errorf("client_credentials with redis down: %d %s, want a local fetch", s, code)
	}
	if s, code := call("/x/rt/me"); s != http.StatusServiceUnavailable || code != "CREDENTIAL_SOURCE_UNAVAILABLE" {
		t.Errorf("rotating refresh token with redis down: %d %s, want 503 CREDENTIAL_SOURCE_UNAVAILABLE", s, code)
	}
	ts.mu.Lock()
	now, rejected := ts.refresh, ts.rejected
	ts.mu.Unlock()
	if n := ts.requests.Load() - before; n != 1 || now != spent || rejected != 0 {
		t.Errorf("redis down: %d token requests (want 1: the client_credentials one), refresh token rotated %v, %d rejected", n, now != spent, rejected)
	}
	waitFor(t, 2*time.Second, func() error { // log lines are written off the request path
		if !strings.Contains(e.logs.String(), "fleet token state unavailable, rotating refresh token not used") {
			return fmt.Errorf("the refused refresh is not logged:\n%s", grepLines(e.logs.String(), "token"))
		}
		return nil
	})

	r.start()
	waitFor(t, 15*time.Second, func() error {
		if s, code := call("/x/rt/me"); s != 200 {
			return &statusErr{s, code}
		}
		return nil
	})
	ts.mu.Lock()
	rejected = ts.rejected
	ts.mu.Unlock()
	if rejected != 0 {
		t.Errorf("%d refresh requests rejected after recovery", rejected)
	}
}

type statusErr struct {
	status int
	code   string
}

func (e *statusErr) Error() string { return http.StatusText(e.status) + " " + e.code }
