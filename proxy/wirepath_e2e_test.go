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
	"net"
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

const tgToken = "123456789:AAF-tgSecret_9x8y7z6w"

const placeholderPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8", "::1/128"]
rules:
  - name: telegram
    host: "{{UP}}"
    credential: telegram/bot-token
    inject: {type: placeholder}
  - name: other
    host: "{{UP2}}"
    credential: test/bearer
`

// chunked frames body as chunks split at the offsets given.
func chunked(body string, cuts ...int) string {
	var b strings.Builder
	prev := 0
	for _, c := range append(cuts, len(body)) {
		if c > prev {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", c-prev, body[prev:c])
			prev = c
		}
	}
	return b.String() + "0\r\n\r\n"
}

// TestPlaceholders: {{airlock:PATH}} is substituted in the path, query,
// header and (chunked, split at every offset) body on the rule binding it;
// the echoed secret is scrubbed from the agent's answer; another
// credential's placeholder is refused (issue 22 item 2; the other host:
// TestHostilePlaceholderElsewhere).
func TestPlaceholders(t *testing.T) {
	t.Parallel()
	up, up2 := newRecorder(t), newRecorder(t)
	e, agent := startRecorderEnv(t, placeholderPolicy, map[string]string{"telegram/bot-token": tgToken, "test/bearer": pathSecret}, up, up2)
	const ph = "{{airlock:telegram/bot-token}}"
	const phPath = "%7B%7Bairlock:telegram%2Fbot-token%7D%7D"
	host := up.hostPort()
	head := func(h, method, target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + h + "\r\n"
	}
	check := func(name string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		assertNoSecret(t, name+": agent's answer", body, tgToken)
		if strings.Contains(body, "airlock:") {
			t.Errorf("%s: the upstream saw a placeholder: %s", name, body)
		}
	}
	last := func() recorded { r := up.all(); return r[len(r)-1] }

	resp, body := rawRequest(t, e, agent, host, head(host, "POST", "/bot"+phPath+"/sendMessage")+"Content-Length: 0\r\n\r\n")
	check("path", resp, body)
	if got := last().RequestURI; got != "/bot"+url.PathEscape(tgToken)+"/sendMessage" && got != "/bot"+tgToken+"/sendMessage" {
		t.Errorf("path at upstream %q", got)
	}
	resp, body = rawRequest(t, e, agent, host, head(host, "GET", "/getMe?chat=1&token="+url.QueryEscape(ph))+"\r\n")
	check("query", resp, body)
	if q, _ := url.ParseQuery(strings.SplitN(last().RequestURI, "?", 2)[1]); q.Get("token") != tgToken || q.Get("chat") != "1" {
		t.Errorf("query at upstream %q", last().RequestURI)
	}
	resp, body = rawRequest(t, e, agent, host, head(host, "GET", "/getMe")+"X-Bot-Token: "+ph+"\r\n\r\n")
	check("header", resp, body)
	if got := last().Header.Get("X-Bot-Token"); got != tgToken {
		t.Errorf("header at upstream: substituted %v", got == tgToken)
	}
	resp, body = rawRequest(t, e, agent, host, head(host, "GET", "/getMe")+"Authorization: Bearer "+ph+"\r\n\r\n")
	check("authorization header", resp, body) // an auth header holding a placeholder is kept, then substituted
	if h := last().Header; h.Get("Authorization") != "Bearer "+tgToken {
		t.Errorf("Authorization at upstream: substituted %v", h.Get("Authorization") == "Bearer "+tgToken)
	}
	js := `{"chat_id":1,"text":"hi","token":"` + ph + `"}`
	resp, body = rawRequest(t, e, agent, host, head(host, "POST", "/sendMessage")+
		"Content-Type: application/json\r\nContent-Length: "+fmt.Sprint(len(js))+"\r\n\r\n"+js)
	check("json body", resp, body)
	want := strings.Replace(js, ph, tgToken, 1)
	if last().Body != want {
		t.Errorf("json body at upstream differs")
	}
	start := strings.Index(js, ph)
	tc := mitmTLS(t, e, agent, host, "127.0.0.1") // one keep-alive connection for every offset
	defer tc.Close()
	br := bufio.NewReader(tc)
	for off := start; off <= start+len(ph); off++ {
		_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
		io.WriteString(tc, head(host, "POST", "/sendMessage")+"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+chunked(js, off, off+1))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		check(fmt.Sprintf("chunked body split at %d", off), resp, string(b))
		if last().Body != want {
			t.Errorf("offset %d: body at upstream differs", off)
		}
	}

	// Another credential's placeholder on the binding host: refused, nothing sent.
	before := len(up.all())
	resp, body = rawRequest(t, e, agent, host, head(host, "GET", "/getMe")+"X-Other: {{airlock:test/bearer}}\r\n\r\n")
	expectError(t, resp.StatusCode, resp.Header, body, 403, "PLACEHOLDER_NOT_ALLOWED")
	if len(up.all()) != before {
		t.Errorf("another credential's placeholder reached the upstream")
	}

	assertNoSecret(t, "airlock logs", e.logs.String(), tgToken)
}

// TestHostilePlaceholderElsewhere: a placeholder sent to a host whose rule
// does not bind it (a bearer rule) is refused with 403
// PLACEHOLDER_NOT_ALLOWED wherever it is; the upstream sees nothing of it.
func TestHostilePlaceholderElsewhere(t *testing.T) {
	t.Parallel()
	up, up2 := newRecorder(t), newRecorder(t)
	e, agent := startRecorderEnv(t, placeholderPolicy, map[string]string{"telegram/bot-token": tgToken, "test/bearer": pathSecret}, up, up2)
	const ph = "{{airlock:telegram/bot-token}}"
	const phPath = "%7B%7Bairlock:telegram%2Fbot-token%7D%7D"
	head := func(h, method, target string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: " + h + "\r\n"
	}
	js := `{"chat_id":1,"text":"hi","token":"` + ph + `"}`
	start := strings.Index(js, ph)
	host2 := up2.hostPort()
	refused := []struct{ name, raw string }{ // the streamed one last: its cut request is recorded late
		{"path", head(host2, "GET", "/bot"+phPath+"/getMe") + "\r\n"},
		{"query", head(host2, "GET", "/getMe?token="+url.QueryEscape(ph)) + "\r\n"},
		{"header", head(host2, "GET", "/getMe") + "X-Bot-Token: " + ph + "\r\n\r\n"},
		{"bearer", head(host2, "GET", "/getMe") + "Authorization: Bearer " + ph + "\r\n\r\n"},
		{"json body", head(host2, "POST", "/x") + "Content-Length: " + fmt.Sprint(len(js)) + "\r\n\r\n" + js},
		{"chunked body", head(host2, "POST", "/x") + "Transfer-Encoding: chunked\r\n\r\n" + chunked(js, start+3)},
	}
	for _, tc := range refused {
		name, raw := tc.name, tc.raw
		before := len(up2.all())
		resp, body := rawRequest(t, e, agent, host2, raw)
		expectError(t, resp.StatusCode, resp.Header, body, 403, "PLACEHOLDER_NOT_ALLOWED")
		if name == "chunked body" {
			time.Sleep(200 * time.Millisecond) // let the cut request reach the recorder
		}
		got := up2.all()[before:]
		for _, r := range got {
			if strings.Contains(strings.ToLower(r.RequestURI+fmt.Sprint(r.Header)+r.Body), "airlock:") {
				t.Errorf("%s: upstream 2 saw the placeholder: %q %q", name, r.RequestURI, r.Body)
			}
			if !r.BodyErr {
				t.Errorf("%s: upstream 2 got a whole request %s %s", name, r.Method, r.RequestURI)
			}
		}
		// A streamed body is cut before the placeholder (the head has gone);
		// everything else is refused before anything is sent.
		if len(got) != 0 && name != "chunked body" {
			t.Errorf("%s: upstream 2 reached %d times", name, len(got))
		}
	}
	assertNoSecret(t, "airlock logs", e.logs.String(), tgToken)
}

// TestCredentialSources: a file source and an exec source (a script)
// inject their values through the real serve; the echoed values are
// scrubbed; an exec source that starts failing answers 503
// CREDENTIAL_SOURCE_UNAVAILABLE naming it once its stale window is over;
// no fetched value appears in any log line (issue 21).
func TestCredentialSources(t *testing.T) {
	t.Parallel()
	const fileVal, execVal = "fv-file-secret-83b1c0a9d7", "xv-exec-secret-2e6f4a1b95"
	up := newRecorder(t)
	e := newEnv(t)
	e.upCAFile = recorderCAs(t, up)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	os.Mkdir(files, 0o700)
	os.WriteFile(filepath.Join(files, "svc-key"), []byte(fileVal+"\n"), 0o600)
	valFile := filepath.Join(dir, "exec-value")
	os.WriteFile(valFile, []byte(execVal), 0o600)
	script := filepath.Join(dir, "fetch.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = k1 ] || exit 2\nexec cat "+valFile+"\n"), 0o700)
	e.mustRun("", "source", "add", "file", "files", "--dir", files, "--first-line")
	e.mustRun("", "source", "add", "exec", "ex", "--ttl", "300ms", "--stale-for", "700ms", "--", script, "{key}")
	e.mustRun("", "vault", "set-ref", "test/file", "--source", "files", "--key", "svc-key")
	e.mustRun("", "vault", "set-ref", "test/exec", "--source", "ex", "--key", "k1")
	agent := e.addAgent("bot")
	e.writePolicy(strings.ReplaceAll(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: from-file
    host: "{{UP}}"
    paths: ["/file/**"]
    credential: test/file
  - name: from-exec
    host: "{{UP}}"
    paths: ["/exec/**"]
    credential: test/exec
    inject: {type: api_key, header: X-Api-Key}
`, "{{UP}}", up.hostPort()))
	e.serve()
	c := e.client(agent)
	get := func(p string) (*http.Response, string) {
		resp, err := c.Get(up.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	last := func() http.Header { r := up.all(); return r[len(r)-1].Header }
	resp, body := get("/file/x")
	if resp.StatusCode != 200 || last().Get("Authorization") != "Bearer "+fileVal {
		t.Fatalf("file source: %d %s", resp.StatusCode, body)
	}
	assertNoSecret(t, "answer (file)", body, fileVal)
	resp, body = get("/exec/x")
	if resp.StatusCode != 200 || last().Get("X-Api-Key") != execVal {
		t.Fatalf("exec source: %d %s", resp.StatusCode, body)
	}
	assertNoSecret(t, "answer (exec)", body, execVal)
	if !strings.Contains(body, "[REDACTED") && !strings.Contains(body, "X-Api-Key: ") {
		t.Logf("echo: %s", body)
	}

	os.Remove(valFile) // the source now fails
	n := len(up.all())
	waitFor(t, 10*time.Second, func() error {
		resp, body := get("/exec/x")
		if resp.StatusCode == 503 && resp.Header.Get("X-Airlock-Error") == "CREDENTIAL_SOURCE_UNAVAILABLE" {
			if !strings.Contains(body, "source ex") {
				t.Errorf("503 does not name the source: %s", body)
			}
			expectError(t, resp.StatusCode, resp.Header, body, 503, "CREDENTIAL_SOURCE_UNAVAILABLE")
			return nil
		}
		n = len(up.all())
		return fmt.Errorf("still %d", resp.StatusCode)
	})
	if len(up.all()) != n {
		t.Errorf("the upstream was reached after the refusal")
	}
	for _, v := range []string{fileVal, execVal} {
		assertNoSecret(t, "airlock logs", e.logs.String(), v)
	}
}

// TestHostilePathsPlainHTTP: the plain http:// proxy door judges the
// request-target the same way (absolute-form, r.RequestURI).
func TestHostilePathsPlainHTTP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []recorded
	mux := http.NewServeMux()
	for _, pattern := range []string{"/v1/public/", "/"} {
		pattern := pattern
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, recorded{Handler: pattern, RequestURI: r.RequestURI, Method: r.Method, Header: r.Header.Clone()})
			mu.Unlock()
		})
	}
	up := httptest.NewServer(mux)
	t.Cleanup(up.Close)
	host := strings.TrimPrefix(up.URL, "http://")
	e := newEnv(t)
	e.setSecret("test/bearer", pathSecret)
	agent := e.addAgent("bot")
	e.writePolicy(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: no-admin
    host: "` + host + `"
    paths: ["/v1/admin/**"]
    action: deny
  - name: api
    host: "` + host + `"
    paths: ["/v1/public/**"]
    credential: test/bearer
    insecure_http: true
`)
	e.serve()
	auth := "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(agentAuth(agent))) + "\r\n"
	for _, target := range []string{"/v1/public%2F..%2Fadmin", "/v1/public/..;/admin/users", "/v1/public/..\\admin",
		"/v1/public/%2e%2e/admin", "/v1/Admin/users", "/v1/admin;x/users", "/v1/public/x"} {
		c, err := net.Dial("tcp", e.proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n%sX-Original-URL: /v1/admin/x\r\nConnection: close\r\n\r\n", host, target, host, auth)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		resp.Body.Close()
		c.Close()
		if (resp.StatusCode == 200) != (target == "/v1/public/x") {
			t.Errorf("%s: %d", target, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].RequestURI != "/v1/public/x" || got[0].Header.Get("X-Original-Url") != "" {
		t.Errorf("upstream saw %+v", got)
	}
	assertNoSecret(t, "airlock logs", e.logs.String(), pathSecret)
}
