package proxy_test

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFleetOAuth2RotatingRefreshE2E: a token endpoint that rotates the
// refresh token on every use and rejects any other; three replicas, each
// with its own copy of the vault file. Many concurrent requests on every
// replica with no token, then with an expired one, then after restarting
// the whole fleet: each time exactly one refresh call fleet-wide, never a
// rejected (reused) refresh token, every request served. Redis holds the
// tokens sealed only: no form of any token or the client secret in KEYS,
// DUMP or the values.
var errNotYet = errors.New("token not expired yet")

func TestFleetOAuth2RotatingRefreshE2E(t *testing.T) {
	r := startRedisE2E(t)
	const lifetime = 6 // seconds; refreshed ahead 0.6 s before expiry
	ts := newTokenServer(t, lifetime, "rt-initial-0")
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
	agent := base.addAgent("bot")
	base.writePolicy(strings.ReplaceAll(oauthPolicy, "{{UP}}", up.hostPort()))
	f := newFleet(t, base, r, 3)
	f.serveAll()

	const perReplica = 20
	var issuedAt time.Time
	round := func(name string, wantRequests int32) {
		t.Helper()
		if !issuedAt.IsZero() { // let the fleet's token expire
			waitFor(t, 2*lifetime*time.Second, func() error {
				if time.Since(issuedAt) < lifetime*time.Second+200*time.Millisecond {
					return errNotYet
				}
				return nil
			})
		}
		var wg sync.WaitGroup
		var ok atomic.Int32
		for _, e := range f.replicas {
			c := e.client(agent)
			for range perReplica {
				wg.Go(func() {
					if status, _, body := agentCall(t, c, "GET", up.URL+"/x/me", ""); status == 200 {
						ok.Add(1)
					} else {
						t.Errorf("%s: %d %s", name, status, body)
					}
				})
			}
		}
		wg.Wait()
		issuedAt = time.Now()
		ts.mu.Lock()
		rejected := ts.rejected
		ts.mu.Unlock()
		if n := ts.requests.Load(); n != wantRequests || rejected != 0 || ok.Load() != 3*perReplica {
			t.Fatalf("%s: %d token requests in all (want %d), %d rejected (want 0), %d of %d served\nlogs:\n%s",
				name, n, wantRequests, rejected, ok.Load(), 3*perReplica, grepLines(f.logs(), "token"))
		}
	}
	round("no token yet", 1)
	round("expired token", 2)
	f.stopAll()
	f.serveAll()
	round("after restarting every replica", 3)

	ts.mu.Lock()
	latest := ts.refresh
	ts.mu.Unlock()
	inVault := 0
	for _, e := range f.replicas {
		if strings.Contains(e.mustRun("", "vault", "get", "graph/app"), latest) {
			inVault++
		}
	}
	if inVault == 0 {
		t.Error("no replica's vault file holds the newest refresh token (writable copies are updated)")
	}
	dump := redisDump(t, r.client())
	if !strings.Contains(dump, "oauth2") {
		t.Fatalf("redis holds no oauth2 record: the fleet path was not used\n%s", dump)
	}
	var forms []string
	for _, s := range append(ts.secrets(), "rt-initial-0") {
		forms = append(forms, fleetSecretForms(s)...)
	}
	assertAbsent(t, "redis KEYS/DUMP/values", dump, forms)
	assertAbsent(t, "replica logs", f.logs(), forms)
}
