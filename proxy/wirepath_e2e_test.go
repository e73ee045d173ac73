package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// End-to-end tests of the pipeline wiring (paths, headers, placeholders,
// credential sources, head guard) through the real `airlock serve`.

// recorder is a real TLS upstream that records every request it receives
// as it saw it (request-target, method, headers, body) and echoes it.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Handler    string // the ServeMux pattern that served it
	RequestURI string
	Method     string
	Header     http.Header
	Body       string
	BodyErr    bool
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	mux := http.NewServeMux()
	for _, pattern := range []string{"/v1/public/", "/v1/admin/", "/v1/delete-account", "/admin/", "/"} {
		pattern := pattern
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, recorded{Handler: pattern, RequestURI: r.RequestURI, Method: r.Method,
				Header: r.Header.Clone(), Body: string(body), BodyErr: err != nil})
			rec.mu.Unlock()
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "%s %s\n", r.Method, r.RequestURI)
			for k, vv := range r.Header {
				fmt.Fprintf(w, "%s: %s\n", k, strings.Join(vv, ", "))
			}
			w.Write(body)
		})
	}
	rec.Server = httptest.NewTLSServer(mux)
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func (r *recorder) hostPort() string { return strings.TrimPrefix(r.URL, "https://") }

// startRecorderEnv runs serve with pol ({{UP}}, {{UP2}} replaced) against
// up (and up2), the vault holding creds.
func startRecorderEnv(t *testing.T, pol string, creds map[string]string, ups ...*recorder) (*env, *url.URL) {
	e := newEnv(t)
	e.upCAFile = recorderCAs(t, ups...)
	for p, v := range creds {
		e.setSecret(p, v)
	}
	agent := e.addAgent("bot")
	repl := []string{"{{UP}}", ups[0].hostPort()}
	if len(ups) > 1 {
		repl = append(repl, "{{UP2}}", ups[1].hostPort())
	}
	e.writePolicy(strings.NewReplacer(repl...).Replace(pol))
	e.serve()
	return e, agent
}

// recorderCAs writes the upstreams' certificates for SSL_CERT_FILE.
func recorderCAs(t *testing.T, ups ...*recorder) string {
	var b bytes.Buffer
	for _, u := range ups {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw}))
	}
	p := filepath.Join(t.TempDir(), "ups.pem")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawRequest sends one raw request inside a fresh MITM'd tunnel to target
// and returns the parsed response and its body.
func rawRequest(t *testing.T, e *env, agent *url.URL, target, raw string) (*http.Response, string) {
	t.Helper()
	tc := mitmTLS(t, e, agent, target, "127.0.0.1")
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(tc, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.80q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// secretForms are the forms of a secret tests grep for.
func secretForms(v string) []string {
	return []string{v, base64.StdEncoding.EncodeToString([]byte(v)), url.QueryEscape(v), url.PathEscape(v), hex.EncodeToString([]byte(v))}
}

func assertNoSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	for _, f := range secretForms(secret) {
		if strings.Contains(text, f) {
			t.Errorf("%s contains the secret (form %q)", where, f[:min(4, len(f))]+"...")
		}
	}
}

const pathSecret = "sk-path-6c1f0e9d2b7a4e"

const pathPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8", "::1/128"]
rules:
  - name: no-delete
    host: "{{UP}}"
    paths: ["/v1/delete-account"]
    action: deny
  - name: no-admin
    host: "{{UP}}"
    paths: ["/v1/admin/**", "/admin/**"]
    action: deny
  - name: no-delete-method
    host: "{{UP}}"
    methods: [DELETE]
    action: deny
  - name: api
    host: "{{UP}}"
    methods: [GET, POST]
    paths: ["/v1/public/**", "/v1/x/**", "/v1/delete-account/**"]
    credential: test/bearer
`

// TestHostilePaths plays every path of issue 16 item 6 against a Go
// ServeMux upstream (and its raw request-target, as a raw-path router
// sees it): the credential never reaches a handler or raw path the policy
// refuses, and override/rewrite headers never arrive.
func TestHostilePaths(t *testing.T) {
	t.Parallel()
	up := newRecorder(t)
	e, agent := startRecorderEnv(t, pathPolicy, map[string]string{"test/bearer": pathSecret}, up)
	host := up.hostPort()
	attacks := []struct{ method, target, extra string }{
		{"GET", "/v1/public%2Fsecret", ""},
		{"GET", "/v1/public%2F", ""},
		{"GET", "/v1/public/..%2f..%2fadmin/users", ""},
		{"GET", "/v1/admin;x/users", ""},
		{"GET", "/v1/x/..;/admin/users", ""},
		{"GET", "/v1/delete-account;", ""},
		{"GET", "/v1/delete-account/", ""},
		{"GET", "/v1/Delete-Account", ""},
		{"GET", "/v1/Admin/users", ""},
		{"GET", "/v1/x/..\\admin/users", ""},
		{"GET", "/v1/x/..%5cadmin/users", ""},
		{"GET", "/v1/x/%2e%2e/admin/users", ""},
		{"GET", "/v1/public/../admin/users", ""},
		{"GET", "/v1/public/%2E%2E/%2E%2E/v1/admin/users", ""},
		{"GET", "/v1/public/x%00", ""},
		{"DELETE", "/v1/public/x", ""},
		{"POST", "/v1/public/x", "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n"},
		{"GET", "/v1/public/x", "X-Original-URL: /admin/delete\r\nX-Rewrite-URL: /admin/delete\r\n"},
	}
	for _, a := range attacks {
		raw := a.method + " " + a.target + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n" + a.extra + "Connection: close\r\n\r\n"
		resp, body := rawRequest(t, e, agent, host, raw)
		assertNoSecret(t, a.target+" answer", body, pathSecret)
		if a.extra == "" && resp.StatusCode < 300 {
			t.Errorf("%s %s: %d, want a refusal", a.method, a.target, resp.StatusCode)
		}
	}
	for _, r := range up.all() {
		if !strings.Contains(r.Header.Get("Authorization"), pathSecret) {
			continue
		}
		p, _, _ := strings.Cut(r.RequestURI, "?")
		low := strings.ToLower(p)
		switch {
		case r.Handler != "/v1/public/" && r.Handler != "/":
			t.Errorf("the credential reached handler %s (%s %s)", r.Handler, r.Method, r.RequestURI)
		case strings.Contains(low, "admin") || strings.Contains(low, "delete-account") || strings.ContainsAny(p, ";\\") ||
			strings.Contains(low, "%2f") || strings.Contains(low, "%5c") || strings.Contains(low, "%2e") || strings.Contains(p, ".."):
			t.Errorf("the credential reached raw path %q", r.RequestURI)
		case r.Method == "DELETE":
			t.Errorf("the credential reached a DELETE")
		}
		for _, h := range []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override", "X-Original-Url", "X-Rewrite-Url"} {
			if r.Header.Get(h) != "" {
				t.Errorf("upstream got %s: %s", h, r.Header.Get(h))
			}
		}
	}
	// The refusal of an encoded slash on a rule restricting paths is a 400
	// BAD_PATH that says what to do.
	resp, body := rawRequest(t, e, agent, host, "GET /v1/public%2Fsecret HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	expectError(t, resp.StatusCode, resp.Header, body, 400, "BAD_PATH")
	// The forwarded path is the judged one, byte for byte.
	before := len(up.all())
	resp, _ = rawRequest(t, e, agent, host, "GET /v1/public/a%20b/c?q=%2F HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("canonical path: %d", resp.StatusCode)
	}
	if got := up.all()[before:]; len(got) != 1 || got[0].RequestURI != "/v1/public/a%20b/c?q=%2F" {
		t.Errorf("forwarded %+v", got)
	}
	assertNoSecret(t, "airlock logs", e.logs.String(), pathSecret)
}

// TestPathDenialNamesNearestRule: a path no rule allows gets explain's
// wording, naming the nearest rule (issue 23 item 8).
func TestPathDenialNamesNearestRule(t *testing.T) {
	t.Parallel()
	up := newRecorder(t)
	pol := "version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n" + pathPolicy[strings.Index(pathPolicy, "  - name: api"):]
	e, agent := startRecorderEnv(t, pol, map[string]string{"test/bearer": pathSecret}, up)
	host := up.hostPort()
	resp, body := rawRequest(t, e, agent, host, "PUT /v1/public/x HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 0\r\n\r\n")
	expectError(t, resp.StatusCode, resp.Header, body, 403, "ACCESS_DENIED")
	var doc struct{ Error struct{ Message string } }
	_ = json.Unmarshal([]byte(body), &doc)
	msg := doc.Error.Message
	if !strings.HasPrefix(msg, "no rule matches this agent, method and path; nearest: rule api") || !strings.Contains(msg, "not PUT") {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, "no rule allows") {
		t.Errorf("old wording: %q", msg)
	}
	if len(up.all()) != 0 {
		t.Errorf("upstream reached")
	}
}

const anthropicKey = "sk-ant-real-5d1e7f3a9c2b8e"

// TestAnthropicSDKHeaders sends the header set @anthropic-ai/sdk sends
// (x-api-key and Authorization: Bearer with its placeholder key, its own
// newer anthropic-version, x-stainless-*) through the shipped
// examples/policies/anthropic.yaml rule: the upstream gets exactly one
// x-api-key, the real one, no Authorization, and the SDK's
// anthropic-version (issue 23 items 18, 19).
func TestAnthropicSDKHeaders(t *testing.T) {
	t.Parallel()
	up := newRecorder(t)
	shipped, err := os.ReadFile("../examples/policies/anthropic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol := strings.ReplaceAll(string(shipped), "host: api.anthropic.com", `host: "{{UP}}"`)
	pol = strings.Replace(pol, "egress:\n", "egress:\n  allow_networks: [\"127.0.0.0/8\"]\n", 1)
	e := newEnv(t)
	e.upCAFile = recorderCAs(t, up)
	e.setSecret("anthropic/api-key", anthropicKey)
	agent := e.addAgent("claude-bot")
	e.writePolicy(strings.ReplaceAll(pol, "{{UP}}", up.hostPort()))
	e.serve()
	c := e.client(agent)
	for _, sent := range []struct{ version, want string }{{"2025-01-01", "2025-01-01"}, {"", "2023-06-01"}} {
		req, _ := http.NewRequest("POST", up.URL+"/v1/messages", strings.NewReader(`{"model":"claude-x","max_tokens":5,"messages":[]}`))
		req.Header.Set("X-Api-Key", "my-anthropic-api-key")
		req.Header.Set("Authorization", "Bearer my-anthropic-api-key")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "Anthropic/JS 0.52.0")
		req.Header.Set("X-Stainless-Lang", "js")
		req.Header.Set("X-Stainless-Package-Version", "0.52.0")
		req.Header.Set("X-Stainless-Retry-Count", "0")
		if sent.version != "" {
			req.Header.Set("Anthropic-Version", sent.version)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		assertNoSecret(t, "agent's answer", string(body), anthropicKey)
		got := up.all()
		h := got[len(got)-1].Header
		if k := h.Values("X-Api-Key"); len(k) != 1 || k[0] != anthropicKey {
			t.Errorf("x-api-key at upstream: %d values, real key: %v", len(k), len(k) == 1 && k[0] == anthropicKey)
		}
		if a := h.Values("Authorization"); len(a) != 0 {
			t.Errorf("upstream got Authorization %q", a)
		}
		if v := h.Values("Anthropic-Version"); len(v) != 1 || v[0] != sent.want {
			t.Errorf("anthropic-version %q, want %q", v, sent.want)
		}
		if h.Get("X-Stainless-Lang") != "js" {
			t.Errorf("SDK headers lost")
		}
	}
	assertNoSecret(t, "airlock logs", e.logs.String(), anthropicKey)
}

// TestHostileUpgradeThenSmuggle: an Upgrade the upstream declines (200,
// no 101) leaves the head guard on: a CL+TE request after it on the same
// connection is refused (issue 16 item 9).
func TestHostileUpgradeThenSmuggle(t *testing.T) {
	t.Parallel()
	up := newRecorder(t)
	e, agent := startRecorderEnv(t, pathPolicy, map[string]string{"test/bearer": pathSecret}, up)
	host := up.hostPort()
	tc := mitmTLS(t, e, agent, host, "127.0.0.1")
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(tc)
	io.WriteString(tc, "GET /v1/public/ws HTTP/1.1\r\nHost: "+host+"\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("upgrade request: %d", resp.StatusCode)
	}
	before := len(up.all())
	io.WriteString(tc, "POST /v1/public/x HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/admin/users HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to CL+TE: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("X-Airlock-Error") != "BAD_REQUEST" {
		t.Errorf("CL+TE after a declined upgrade: %d %s", resp.StatusCode, b)
	}
	if n := len(up.all()) - before; n != 0 {
		t.Errorf("upstream reached %d times after the smuggled head", n)
	}
}
