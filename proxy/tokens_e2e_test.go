package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// End-to-end tests of the token credentials (issue 9): OAuth2 against a
// loopback token endpoint, and AWS SigV4 checked by an upstream that
// recomputes the signature.

const (
	oauthClientID     = "airlock-e2e"
	oauthClientSecret = "cs-oauth-5d1f0e2b9a7c"
)

// tokenServer is a loopback OAuth2 token endpoint. It issues access tokens
// "at-N" (and, for the refresh grant, rotates the refresh token to "rt-N"
// on every use, rejecting any other), and knows which tokens are valid for
// the upstream it guards.
type tokenServer struct {
	*httptest.Server
	expiresIn int
	requests  atomic.Int32

	mu       sync.Mutex // guards the fields below
	refresh  string     // the one refresh token currently accepted
	valid    map[string]bool
	issued   []string // every token issued, for the leak checks
	rejected int
}

func newTokenServer(t *testing.T, expiresIn int, refresh string) *tokenServer {
	ts := &tokenServer{expiresIn: expiresIn, refresh: refresh, valid: map[string]bool{}}
	ts.Server = httptest.NewTLSServer(http.HandlerFunc(ts.serveToken))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	n := ts.requests.Add(1)
	_ = r.ParseForm()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code string) {
		ts.rejected++
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":%q}`, code)
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != oauthClientID || secret != oauthClientSecret {
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	doc := map[string]any{"token_type": "Bearer", "expires_in": ts.expiresIn}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "refresh_token":
		if r.PostForm.Get("refresh_token") != ts.refresh {
			fail(http.StatusBadRequest, "invalid_grant")
			return
		}
		ts.refresh = fmt.Sprintf("rt-rotated-%d", n)
		ts.issued = append(ts.issued, ts.refresh)
		doc["refresh_token"] = ts.refresh
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	tok := fmt.Sprintf("at-e2e-%d-%x", n, time.Now().UnixNano())
	ts.valid[tok] = true
	ts.issued = append(ts.issued, tok)
	doc["access_token"] = tok
	_ = json.NewEncoder(w).Encode(doc)
}

func (ts *tokenServer) revokeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.valid)
}

func (ts *tokenServer) secrets() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string{oauthClientSecret}, ts.issued...)
}

// protected is the upstream API: it accepts only valid tokens and answers
// with digests of the token and body it received.
func (ts *tokenServer) protected(hits *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ts.mu.Lock()
		ok := ts.valid[tok]
		ts.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token_sha256":%q,"body_sha256":%q}`, digest(tok), digest(string(body)))
	})
}

func assertAbsent(t *testing.T, where, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%d bytes)", where, len(s))
		}
	}
}

const oauthPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: graph
    host: "{{UP}}"
    paths: ["/x/**"]
    credential: graph/app
    inject: {type: oauth2}
  - name: down
    host: "{{UP}}"
    paths: ["/down/**"]
    credential: graph/down
    inject: {type: oauth2}
`

// agentCall does one request through airlock and returns status, headers
// and body.
func agentCall(t *testing.T, c *http.Client, method, u, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return 0, nil, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestOAuth2ClientCredentialsE2E(t *testing.T) {
	t.Parallel() // own home, own ports
	// 6 s: long enough that 50 requests on a loaded 2-core machine finish
	// inside one token's life (3 s did not, once).
	const lifetime = 6 * time.Second
	ts := newTokenServer(t, int(lifetime/time.Second), "")
	var hits atomic.Int32
	up := newUpstream(t, ts.protected(&hits))
	e := newEnv(t)
	e.upCAFile = up.caFile(t) // httptest servers share one certificate: it covers the token endpoint too
	e.mustRun(oauthClientSecret+"\n", "vault", "set-oauth2", "graph/app", "--token-url", ts.URL+"/oauth2/token",
		"--client-id", oauthClientID, "--scope", "https://graph.example/.default")
	down := closedPort(t)
	e.mustRun("unused-secret\n", "vault", "set-oauth2", "graph/down", "--token-url", "https://127.0.0.1:"+down+"/token", "--client-id", "x")
	if out := e.mustRun("", "vault", "list"); !strings.Contains(out, "oauth2") {
		t.Fatalf("vault list does not show the oauth2 kind:\n%s", out)
	}
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(oauthPolicy, "{{UP}}", up.hostPort()))
	e.serve()
	c := e.client(agent)
	var agentSaw strings.Builder
	var agentMu sync.Mutex

	// 50 concurrent requests: one token request.
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, body := agentCall(t, c, "GET", up.URL+"/x/me?i="+fmt.Sprint(i), "")
			agentMu.Lock()
			agentSaw.WriteString(body)
			agentMu.Unlock()
			if status != 200 {
				t.Errorf("request %d: %d %s", i, status, body)
			}
		}()
	}
	wg.Wait()
	if n := ts.requests.Load(); n != 1 {
		t.Fatalf("%d token requests for 50 concurrent agent requests, want 1", n)
	}

	if took := time.Since(start); took > lifetime*3/4 {
		t.Logf("the 50 requests took %v of the token's %v", took, lifetime)
	}

	// After expiry: exactly one refresh, however many requests.
	waitFor(t, 2*lifetime, func() error {
		if time.Since(start) < lifetime+200*time.Millisecond {
			return fmt.Errorf("token not expired yet")
		}
		return nil
	})
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, body := agentCall(t, c, "GET", up.URL+"/x/me", ""); status != 200 {
				t.Errorf("after expiry, request %d: %d %s", i, status, body)
			}
		}()
	}
	wg.Wait()
	if n := ts.requests.Load(); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}

	// The upstream revokes the token: 401, then one retry with a new token,
	// body replayed.
	ts.revokeAll()
	before := hits.Load()
	status, _, body := agentCall(t, c, "POST", up.URL+"/x/send", `{"msg":"hi"}`)
	if status != 200 || !strings.Contains(body, digest(`{"msg":"hi"}`)) {
		t.Fatalf("after revocation: %d %s", status, body)
	}
	if n, h := ts.requests.Load(), hits.Load()-before; n != 3 || h != 2 {
		t.Fatalf("after a 401: %d token requests (want 3), %d upstream attempts (want 2)", n, h)
	}
	agentSaw.WriteString(body)

	// Token endpoint down: a clear JSON error, never a stale token.
	status, hdr, body := agentCall(t, c, "GET", up.URL+"/down/me", "")
	expectError(t, status, hdr, body, 502, "UPSTREAM_ERROR")
	agentSaw.WriteString(body)

	metrics := adminGet(t, e, "/metrics")
	if !strings.Contains(metrics, `airlock_oauth2_token_requests_total{credential="graph/app",result="ok"} 3`) ||
		!strings.Contains(metrics, `airlock_oauth2_token_expiry_seconds{credential="graph/app"}`) {
		t.Errorf("oauth2 metrics missing:\n%s", grepLines(metrics, "oauth2"))
	}
	assertAbsent(t, "agent-visible output", agentSaw.String(), ts.secrets())
	assertAbsent(t, "airlock logs", e.logs.String(), ts.secrets())
}

func TestOAuth2RefreshRotationE2E(t *testing.T) {
	t.Parallel() // own home, own ports
	ts := newTokenServer(t, 1, "rt-initial-0")
	var hits atomic.Int32
	up := newUpstream(t, ts.protected(&hits))
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	secretFile := t.TempDir() + "/client-secret"
	if err := os.WriteFile(secretFile, []byte(oauthClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("rt-initial-0\n", "vault", "set-oauth2", "graph/app", "--grant", "refresh_token", "--token-url", ts.URL+"/token",
		"--client-id", oauthClientID, "--client-secret-file", secretFile)
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(oauthPolicy, "{{UP}}", up.hostPort()))

	call := func(cycle int) {
		t.Helper()
		if status, _, body := agentCall(t, e.client(agent), "GET", up.URL+"/x/me", ""); status != 200 {
			t.Fatalf("cycle %d: %d %s\nlogs:\n%s", cycle, status, body, e.logs.String())
		}
	}
	e.serve()
	call(1) // rt-initial-0 → rotated
	first := e.logs.String()
	e.stop()
	e.serve() // a new process reads the rotated refresh token from the vault
	call(2)
	issued := time.Now()
	waitFor(t, 5*time.Second, func() error {
		if time.Since(issued) < 1100*time.Millisecond {
			return fmt.Errorf("access token not expired yet")
		}
		return nil
	})
	call(3)
	ts.mu.Lock()
	latest, rejected := ts.refresh, ts.rejected
	ts.mu.Unlock()
	if n := ts.requests.Load(); n != 3 || rejected != 0 {
		t.Fatalf("%d token requests (want 3), %d rejected (want 0)", n, rejected)
	}
	if got := e.mustRun("", "vault", "get", "graph/app"); !strings.Contains(got, latest) {
		t.Fatal("the vault does not hold the latest rotated refresh token")
	}
	assertAbsent(t, "airlock logs", first+e.logs.String(), ts.secrets())
}

// TestOAuth2EchoedTokenScrubbedAcrossRefresh plays an upstream that
// echoes the access token it was sent (a debug endpoint, a reflected
// header): the agent must see neither the first token nor the one that
// replaces it after expiry. The scrubber of an oauth2 credential is cached
// by its live tokens: keyed by the credential alone, the second token
// passed in clear.
func TestOAuth2EchoedTokenScrubbedAcrossRefresh(t *testing.T) {
	t.Parallel() // own home, own ports
	ts := newTokenServer(t, 1, "")
	up := newUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"you_sent":%q}`, tok)
	}))
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.mustRun(oauthClientSecret+"\n", "vault", "set-oauth2", "graph/app", "--token-url", ts.URL+"/oauth2/token", "--client-id", oauthClientID)
	e.mustRun("unused-secret\n", "vault", "set-oauth2", "graph/down", "--token-url", "https://127.0.0.1:"+closedPort(t)+"/token", "--client-id", "x")
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(oauthPolicy, "{{UP}}", up.hostPort()))
	e.serve()
	var saw strings.Builder
	for round := 1; round <= 2; round++ {
		if round == 2 { // the first token expires: the next request gets a new one
			time.Sleep(1100 * time.Millisecond)
		}
		status, hdr, body := agentCall(t, e.client(agent), "GET", up.URL+"/x/echo", "")
		if status != 200 || !strings.Contains(body, "[REDACTED:graph/app]") {
			t.Fatalf("round %d: %d %s (want the echoed token redacted)", round, status, body)
		}
		saw.WriteString(body)
		for k, v := range hdr {
			saw.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	if n := ts.requests.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2 (the first token expired)", n)
	}
	assertAbsent(t, "agent-visible output", saw.String(), ts.secrets())
}

func adminGet(t *testing.T, e *env, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + e.adminAddr + path)
	if err != nil {
		t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
