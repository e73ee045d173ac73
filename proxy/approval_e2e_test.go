package proxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Approvals through the real `airlock serve` and the real CLI.

const heldSecret = "sk-held-0123456789abcdef"

// approvalEnv is a home with agent bot, credential api/key and a rule
// "held" (approval: required) for a counting TLS upstream.
type approvalEnv struct {
	*env
	up    *upstream
	hits  atomic.Int64
	agent string
}

func newApprovalEnv(t *testing.T, approvals, unmatched string) *approvalEnv {
	t.Helper()
	a := &approvalEnv{env: newEnv(t)}
	a.up = newUpstream(t, nil)
	inner := a.up.Config.Handler
	a.up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		inner.ServeHTTP(w, r)
	})
	a.upCAFile = a.up.caFile(t)
	a.setSecret("api/key", heldSecret)
	u := a.addAgent("bot")
	a.agent = u.String()
	if unmatched == "" {
		unmatched = "deny"
	}
	a.writePolicy(fmt.Sprintf("version: 1\negress:\n  unmatched: %s\n  allow_networks: [\"127.0.0.0/8\"]\n%s"+
		"rules:\n  - name: held\n    host: %q\n    credential: api/key\n    approval: required\n",
		unmatched, approvals, a.up.hostPort()))
	return a
}

func (a *approvalEnv) clientFor() *http.Client {
	u, _ := url.Parse(a.agent)
	c := a.client(u)
	c.Timeout = 90 * time.Second
	return c
}

// stopAndWait stops serve and waits until the process is gone.
func (a *approvalEnv) stopAndWait() {
	a.t.Helper()
	p := a.cmd.Process
	a.stop()
	waitFor(a.t, 30*time.Second, func() error {
		if p.Signal(syscall.Signal(0)) == nil {
			return fmt.Errorf("serve still running")
		}
		return nil
	})
}

// pending lists the held entries with `airlock approvals --json`.
func (a *approvalEnv) pending() []map[string]any {
	a.t.Helper()
	out := a.mustRun("", "approvals", "--json", "--admin", a.adminAddr)
	var doc struct {
		Pending []map[string]any `json:"pending"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		a.t.Fatalf("approvals --json: %v: %s", err, out)
	}
	return doc.Pending
}

// waitPending waits until n entries are held (each with at least waiters
// waiters) and returns them.
func (a *approvalEnv) waitPending(n, waiters int) []map[string]any {
	a.t.Helper()
	var ps []map[string]any
	waitFor(a.t, 20*time.Second, func() error {
		ps = a.pending()
		if len(ps) != n {
			return fmt.Errorf("%d pending, want %d", len(ps), n)
		}
		for _, p := range ps {
			if w, _ := p["waiters"].(float64); int(w) < waiters {
				return fmt.Errorf("entry has %v waiters, want %d", p["waiters"], waiters)
			}
		}
		return nil
	})
	return ps
}

type heldResult struct {
	status int
	code   string
	seen   seenReq
	body   string
	at     time.Time
	err    error
}

func (a *approvalEnv) getAsync(c *http.Client, url string) <-chan heldResult {
	ch := make(chan heldResult, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			ch <- heldResult{err: err, at: time.Now()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := heldResult{status: resp.StatusCode, code: resp.Header.Get("X-Airlock-Error"), body: string(b), at: time.Now()}
		_ = json.Unmarshal(b, &r.seen)
		ch <- r
	}()
	return ch
}

// TestApprovalServeApprove: a held request is released by `airlock
// approvals approve` within 1 s and the upstream gets the injected key;
// the audit line of the decision names the approver.
func TestApprovalServeApprove(t *testing.T) {
	a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "")
	a.serve()
	res := a.getAsync(a.clientFor(), a.up.URL+"/v1/held")
	p := a.waitPending(1, 1)[0]
	if p["rule"] != "held" || p["method"] != "GET" || p["path"] != "/v1/held" {
		t.Fatalf("pending entry %v", p)
	}
	if a.hits.Load() != 0 {
		t.Fatal("upstream reached while held")
	}
	a.mustRun("", "approvals", "approve", p["id"].(string), "--once", "--admin", a.adminAddr)
	approved := time.Now()
	r := <-res
	if r.err != nil || r.status != 200 {
		t.Fatalf("released request: %d %v %s", r.status, r.err, r.body)
	}
	if d := r.at.Sub(approved); d > time.Second {
		t.Fatalf("released %v after the approve command returned", d)
	}
	if r.seen.Auth != digest("Bearer "+heldSecret) {
		t.Fatal("upstream did not get the injected key")
	}
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(a.logs.String(), `"action":"approval_approved"`) || !strings.Contains(a.logs.String(), `"approver":"`) {
			return fmt.Errorf("no approval audit line naming the approver")
		}
		return nil
	})
	_, metrics := a.adminGet("/metrics")
	for _, want := range []string{`airlock_approvals_total{result="approved"} 1`, "airlock_approvals_pending 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	tok := a.adminToken()
	for what, text := range map[string]string{"logs": a.logs.String(), "metrics": metrics} {
		for _, secret := range []string{heldSecret, tok} {
			if strings.Contains(text, secret) {
				t.Fatalf("a secret is in the %s", what)
			}
		}
	}
}

// TestApprovalServeRefusals: deny → 403 APPROVAL_DENIED; nobody deciding
// within approvals.timeout → 403 APPROVAL_TIMEOUT; neither reaches the
// upstream. (That no credential is read before approval is counted at the
// Source seam in TestApprovalHoldsBeforeCredential: serve's vault source
// has no read counter.)
func TestApprovalServeRefusals(t *testing.T) {
	t.Run("deny", func(t *testing.T) {
		a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "")
		a.serve()
		res := a.getAsync(a.clientFor(), a.up.URL+"/v1/held")
		p := a.waitPending(1, 1)[0]
		a.mustRun("", "approvals", "deny", p["id"].(string), "--reason", "not today", "--admin", a.adminAddr)
		r := <-res
		if r.status != 403 || r.code != "APPROVAL_DENIED" || !strings.Contains(r.body, p["id"].(string)) {
			t.Fatalf("denied request: %d %s %s", r.status, r.code, r.body)
		}
		if a.hits.Load() != 0 {
			t.Fatal("a denied request reached the upstream")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		a := newApprovalEnv(t, "approvals:\n  timeout: 1s\n", "")
		a.serve()
		start := time.Now()
		r := <-a.getAsync(a.clientFor(), a.up.URL+"/v1/held")
		if r.status != 403 || r.code != "APPROVAL_TIMEOUT" {
			t.Fatalf("timed-out request: %d %s %s %v\n%s", r.status, r.code, r.body, r.err, a.logs.String())
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || !strings.Contains(r.body, "airlock approvals approve") {
			t.Fatalf("refusal body: %s", r.body)
		}
		if d := time.Since(start); d < time.Second || d > 10*time.Second {
			t.Fatalf("answered after %v with a 1s timeout", d)
		}
		if a.hits.Load() != 0 {
			t.Fatal("a timed-out request reached the upstream")
		}
	})
}

// TestApprovalServeShared: 20 concurrent held requests share one entry;
// one approval releases all of them; the webhook receiver on loopback
// gets exactly one POST for it.
func TestApprovalServeShared(t *testing.T) {
	var mu sync.Mutex
	var posts []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		posts = append(posts, m)
		mu.Unlock()
	}))
	defer hook.Close()
	a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n  webhook: "+hook.URL+"/hook\n", "")
	a.serve()
	c := a.clientFor()
	c.Transport.(*http.Transport).MaxConnsPerHost = 0
	var results []<-chan heldResult
	for i := 0; i < 20; i++ {
		results = append(results, a.getAsync(c, a.up.URL+fmt.Sprintf("/v1/held/%d", i)))
	}
	p := a.waitPending(1, 20)[0]
	a.mustRun("", "approvals", "approve", p["id"].(string), "--once", "--admin", a.adminAddr)
	for i, ch := range results {
		if r := <-ch; r.status != 200 || r.seen.Auth != digest("Bearer "+heldSecret) {
			t.Fatalf("request %d: %d %v %s", i, r.status, r.err, r.body)
		}
	}
	// A second entry (a new hold after the once-approval) gets its own POST.
	res := a.getAsync(c, a.up.URL+"/v1/held/again")
	p2 := a.waitPending(1, 1)[0]
	a.mustRun("", "approvals", "deny", p2["id"].(string), "--admin", a.adminAddr)
	<-res
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(posts) != 2 {
			return fmt.Errorf("%d webhook POSTs, want 2", len(posts))
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive by now (retries back off from 500ms)
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 2 {
		t.Fatalf("%d webhook POSTs, want exactly one per entry", len(posts))
	}
	tok := a.adminToken()
	for i, id := range []any{p["id"], p2["id"]} {
		if raw, _ := json.Marshal(posts[i]); strings.Contains(string(raw), tok) || strings.Contains(string(raw), heldSecret) {
			t.Fatalf("webhook POST %d carries a secret", i)
		}
		pend, _ := posts[i]["pending"].(map[string]any)
		if pend["id"] != id || !strings.Contains(fmt.Sprint(posts[i]["approve_url"]), a.adminAddr) {
			t.Fatalf("POST %d: %v", i, posts[i])
		}
	}
}

// TestApprovalServeRemembered: an approval --for 1h survives a serve
// restart (approvals.json in the home): the request after the restart
// passes at once, with nothing pending.
func TestApprovalServeRemembered(t *testing.T) {
	a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "")
	a.serve()
	res := a.getAsync(a.clientFor(), a.up.URL+"/v1/held")
	p := a.waitPending(1, 1)[0]
	a.mustRun("", "approvals", "approve", p["id"].(string), "--for", "1h", "--admin", a.adminAddr)
	if r := <-res; r.status != 200 {
		t.Fatalf("approved: %d %s", r.status, r.body)
	}
	a.stopAndWait()
	if st, err := os.Stat(filepath.Join(a.home, "approvals.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("approvals.json: %v", err)
	}
	a.serve()
	start := time.Now()
	status, seen, _, body := getJSON(t, a.clientFor(), a.up.URL+"/v1/held", nil)
	if status != 200 || seen.Auth != digest("Bearer "+heldSecret) || time.Since(start) > 5*time.Second {
		t.Fatalf("after restart: %d %s (%v)", status, body, time.Since(start))
	}
	if ps := a.pending(); len(ps) != 0 {
		t.Fatalf("after restart the request was held again: %v", ps)
	}
}

// TestApprovalServeAskAlways: under egress.unmatched: ask the CONNECT of a
// host no rule names is held (method CONNECT); `approve --always` tunnels
// it and writes policy.proposed.yaml beside the policy, which `airlock
// policy check` accepts once it is under rules:.
func TestApprovalServeAskAlways(t *testing.T) {
	a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "ask")
	a.serve()
	// A host no rule names ("localhost", the rule names 127.0.0.1); the
	// approved tunnel is end to end, so the agent trusts other's own cert.
	other := newUpstream(t, nil)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	roots := x509.NewCertPool()
	roots.AddCert(other.Certificate())
	u, _ := url.Parse(a.agent)
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(a.proxyURL(u)),
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "example.com"}}}
	res := a.getAsync(c, otherURL+"/v1/free")
	p := a.waitPending(1, 1)[0]
	if p["method"] != "CONNECT" || p["unmatched"] != true || !strings.HasPrefix(fmt.Sprint(p["host"]), "localhost") {
		t.Fatalf("pending %v", p)
	}
	a.mustRun("", "approvals", "approve", p["id"].(string), "--always", "--admin", a.adminAddr)
	if r := <-res; r.status != 200 || r.seen.Auth != "" {
		t.Fatalf("approved unmatched CONNECT: %d %v %s", r.status, r.err, r.body)
	}
	proposed := filepath.Join(a.home, "policy.proposed.yaml")
	frag, err := os.ReadFile(proposed)
	if err != nil || !strings.Contains(string(frag), "host: localhost") {
		t.Fatalf("policy.proposed.yaml: %v\n%s", err, frag)
	}
	pol, _ := os.ReadFile(filepath.Join(a.home, "policy.yaml"))
	if strings.Contains(string(pol), "approved-") {
		t.Fatal("approve --always rewrote policy.yaml")
	}
	check := filepath.Join(t.TempDir(), "check.yaml")
	if err := os.WriteFile(check, append([]byte("version: 1\nrules:\n"), frag...), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := a.run("", "policy", "check", check); code != 0 {
		t.Fatalf("policy check of the proposed rule: exit %d %s %s\n%s", code, out, errs, frag)
	}
	// Remembered always: the next CONNECT is not held.
	if status, _, _, body := getJSON(t, c, otherURL+"/v1/again", nil); status != 200 {
		t.Fatalf("second CONNECT: %d %s", status, body)
	}
}

// TestApprovalServeReload: a policy reload applies a new approvals.timeout
// to the next hold (60s before, 1s after).
func TestApprovalServeReload(t *testing.T) {
	a := newApprovalEnv(t, "approvals:\n  timeout: 60s\n", "")
	a.serve()
	pol, err := os.ReadFile(filepath.Join(a.home, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a.writePolicy(strings.Replace(string(pol), "timeout: 60s", "timeout: 1s", 1))
	waitFor(t, 30*time.Second, func() error {
		if !strings.Contains(a.logs.String(), `"msg":"approvals reconfigured"`) {
			return fmt.Errorf("policy not reloaded yet")
		}
		return nil
	})
	start := time.Now()
	r := <-a.getAsync(a.clientFor(), a.up.URL+"/v1/held")
	if r.status != 403 || r.code != "APPROVAL_TIMEOUT" || time.Since(start) > 10*time.Second {
		t.Fatalf("after reload: %d %s after %v", r.status, r.code, time.Since(start))
	}
	if a.hits.Load() != 0 {
		t.Fatal("upstream reached")
	}
}
