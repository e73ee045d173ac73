package proxy_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The hostile-agent suite: a prompt-injected agent and a chatty upstream
// try to get the secret back or sent elsewhere. Every test ends by checking
// that no form of any secret is in airlock's logs or /metrics.

const hostileSecret = "sk-bearer-4f0c2a77e1d94b" // secrets["test/bearer"]

const hostilePolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8", "::1/128"]
rules:
  - name: echo
    host: "{{UP}}"
    paths: ["/x/**"]
    credential: test/bearer
  - name: limited
    host: "{{UP}}"
    paths: ["/limited/**"]
    credential: test/bearer
    rate_limit: 2/m
  - name: hang
    host: "{{UP}}"
    paths: ["/hang/**"]
    credential: test/bearer
    timeout: 1s
  - name: plain-refused
    host: "{{PLAIN}}"
    paths: ["/refused/**"]
    credential: test/bearer
  - name: plain-allowed
    host: "{{PLAIN}}"
    paths: ["/allowed/**"]
    credential: test/bearer
    insecure_http: true
  - name: second-open
    host: "{{UP2}}"
`

// echoHandler answers with the injected secret (from Authorization) in the
// form and place asked for: body split at ?at= over two flushed writes,
// a header, base64, URL-encoded; or redirects; or hangs.
func echoHandler(hang <-chan struct{}, second string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		q := r.URL.Query()
		switch q.Get("form") {
		case "header":
			w.Header().Set("X-Debug-Key", secret)
		case "b64":
			secret = base64.StdEncoding.EncodeToString([]byte(secret))
		case "url":
			secret = url.QueryEscape(secret)
		case "redirect":
			http.Redirect(w, r, second+"/stolen", http.StatusFound)
			return
		}
		body := `{"your_key":"` + secret + `"}`
		at, _ := strconv.Atoi(q.Get("at"))
		at = min(max(at, 0), len(body))
		_, _ = io.WriteString(w, body[:at])
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, body[at:])
	})
}

type hostileEnv struct {
	*env
	up, up2 *upstream
	plain   *httptest.Server
	plainMu sync.Mutex
	plainH  []http.Header
	agent   *url.URL
	c       *http.Client
}

func startHostile(t *testing.T, serveArgs ...string) *hostileEnv {
	h := &hostileEnv{}
	h.up2 = newUpstream(t, nil)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	h.up = newUpstream(t, echoHandler(hang, h.up2.URL))
	h.up.Config.Handler.(*http.ServeMux).HandleFunc("/hang/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	h.up.Config.Handler.(*http.ServeMux).HandleFunc("/limited/", func(w http.ResponseWriter, r *http.Request) {})
	h.plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.plainMu.Lock()
		h.plainH = append(h.plainH, r.Header.Clone())
		h.plainMu.Unlock()
		_, _ = io.WriteString(w, "auth sha256 "+digest(r.Header.Get("Authorization")))
	}))
	t.Cleanup(h.plain.Close)
	h.env = newEnv(t)
	h.upCAFile = h.up.caFile(t)
	h.setSecret("test/bearer", hostileSecret)
	h.agent = h.addAgent("bot")
	h.writePolicy(strings.NewReplacer("{{UP}}", h.up.hostPort(), "{{UP2}}", h.up2.hostPort(),
		"{{PLAIN}}", strings.TrimPrefix(h.plain.URL, "http://")).Replace(hostilePolicy))
	h.serve(serveArgs...)
	h.c = h.client(h.agent)
	t.Cleanup(func() { h.assertClean(t) })
	return h
}

// assertClean checks airlock's logs, metrics and the second upstream.
func (h *hostileEnv) assertClean(t *testing.T) {
	assertNoSecrets(t, "airlock logs", h.logs.String())
	if resp, err := http.Get("http://" + h.adminAddr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assertNoSecrets(t, "/metrics", string(b))
	}
	for _, hdr := range h.up2.allHeaders() {
		assertNoSecrets(t, "second upstream headers", fmt.Sprint(hdr))
	}
}

func (h *hostileEnv) get(t *testing.T, rawURL string) (int, http.Header, string) {
	t.Helper()
	resp, err := h.c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHostileEchoScrubbed(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	body := `{"your_key":"` + hostileSecret + `"}`
	want := `{"your_key":"[REDACTED:test/bearer]"}`
	for at := 0; at <= len(body); at++ {
		_, _, got := h.get(t, h.up.URL+"/x/echo?at="+strconv.Itoa(at))
		if got != want {
			t.Fatalf("split at %d: %q", at, got)
		}
	}
	for _, form := range []string{"header", "b64", "url"} {
		_, hdr, got := h.get(t, h.up.URL+"/x/echo?form="+form)
		assertNoSecrets(t, "response to form="+form, got+fmt.Sprint(hdr))
		if !strings.Contains(got+fmt.Sprint(hdr), "[REDACTED:test/bearer]") {
			t.Errorf("form=%s: no redaction marker: %q %v", form, got, hdr)
		}
	}
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(h.logs.String(), "secret echo scrubbed") {
			return fmt.Errorf("no scrub warning in the logs")
		}
		return nil
	})
}

func TestHostileRedirectToSecondUpstream(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	c := h.client(h.agent)
	c.CheckRedirect = nil // the agent follows; airlock must not carry the credential
	resp, err := c.Get(h.up.URL + "/x/echo?form=redirect")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := h.up2.allHeaders()
	if len(seen) != 1 || seen[0].Get("Authorization") != "" {
		t.Fatalf("second upstream saw %d requests, auth %q; body %s", len(seen), seen[0].Get("Authorization"), b)
	}
}

func TestHostileRequestHeaders(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	req, _ := http.NewRequest("GET", h.up2.URL+"/dup", nil)
	req.Header["Authorization"] = []string{"Bearer agent-one", "Bearer agent-two"}
	req.Header.Set("Proxy-Authorization", "Basic c3RvbGVu")
	req.Header.Set("Proxy-Connection", "keep-alive")
	resp, err := h.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := h.up2.allHeaders()
	if len(seen) != 1 {
		t.Fatalf("second upstream saw %d requests", len(seen))
	}
	for k := range seen[0] {
		if strings.HasPrefix(k, "Proxy-") {
			t.Errorf("%s forwarded", k)
		}
	}
	if seen[0].Get("Via") != "1.1 airlock" {
		t.Errorf("Via = %q", seen[0].Get("Via"))
	}
}

// rawInTunnel sends raw bytes inside a MITM'd tunnel and returns the reply.
func (h *hostileEnv) rawInTunnel(t *testing.T, raw string) string {
	tc := mitmTLS(t, h.env, h.agent, h.up.hostPort(), "127.0.0.1")
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(tc, raw)
	b, _ := io.ReadAll(tc)
	return string(b)
}

func TestHostileSmugglingAndLoops(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	host := h.up.hostPort()
	cases := map[string]struct{ raw, status, code string }{
		"CL+TE": {raw: "POST /x/echo HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x/echo HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
			status: "400", code: "BAD_REQUEST"},
		"invalid header bytes": {raw: "GET /x/echo HTTP/1.1\r\nHost: " + host + "\r\nX-Bad\x01: v\r\n\r\n", status: "400"},
		"oversize header":      {raw: "GET /x/echo HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", status: "431"},
		"via loop":             {raw: "GET /x/echo HTTP/1.1\r\nHost: " + host + "\r\nVia: 1.1 airlock\r\nConnection: close\r\n\r\n", status: "508", code: "LOOP_DETECTED"},
	}
	before := len(h.up.allHeaders())
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := h.rawInTunnel(t, tc.raw)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) || !strings.Contains(got, tc.code) {
				t.Errorf("reply: %.300q", got)
			}
		})
	}
	if n := len(h.up.allHeaders()) - before; n != 0 {
		t.Errorf("upstream reached %d times", n)
	}
	// airlock's own listener as a destination, though loopback is allowed.
	resp, _, _ := rawConnect(t, h.proxyAddr, h.proxyAddr, agentAuth(h.agent))
	if resp.StatusCode == http.StatusOK {
		c := h.client(h.agent)
		r, err := c.Get("https://" + h.proxyAddr + "/")
		if err == nil && r.StatusCode < 400 {
			t.Errorf("request to airlock's own address answered %d", r.StatusCode)
		}
	}
}

func TestHostilePlainHTTP(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	status, hdr, _ := h.get(t, h.plain.URL+"/refused/x")
	if status != http.StatusForbidden || hdr.Get("X-Airlock-Error") != "ACCESS_DENIED" {
		t.Errorf("refused: %d %v", status, hdr)
	}
	status, _, body := h.get(t, h.plain.URL+"/allowed/x")
	if status != 200 || !strings.Contains(body, digest("Bearer "+hostileSecret)) {
		t.Errorf("allowed: %d %q", status, body)
	}
	if len(h.plainH) != 1 {
		t.Errorf("plain upstream saw %d requests, want 1", len(h.plainH))
	}
}

func TestHostileRateLimit(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	for i := range 2 {
		if status, _, b := h.get(t, h.up.URL+"/limited/a"); status != 200 {
			t.Fatalf("request %d: %d %s", i, status, b)
		}
	}
	status, hdr, _ := h.get(t, h.up.URL+"/limited/a")
	ra, _ := strconv.Atoi(hdr.Get("Retry-After"))
	if status != http.StatusTooManyRequests || hdr.Get("X-Airlock-Error") != "RATE_LIMITED" || ra < 1 || ra > 60 {
		t.Errorf("third request: %d %v", status, hdr)
	}
}

func TestHostileSlowloris(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t, "--read-header-timeout", "1s")
	c, err := net.Dial("tcp", h.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c)
		closed <- time.Since(start)
	}()
	head := "GET http://" + h.up.hostPort() + "/ HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i < len(head); i++ {
		select {
		case d := <-closed:
			if d > 3*time.Second {
				t.Errorf("closed after %v, want about 1s", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := c.Write([]byte{head[i]}); err != nil {
			break
		}
	}
	select {
	case d := <-closed:
		if d > 3*time.Second {
			t.Errorf("closed after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Error("slowloris connection still open")
	}
}

func TestHostileUpstreamHang(t *testing.T) {
	t.Parallel() // own home, own ports
	h := startHostile(t)
	start := time.Now()
	status, hdr, _ := h.get(t, h.up.URL+"/hang/x")
	if status != http.StatusGatewayTimeout || hdr.Get("X-Airlock-Error") != "UPSTREAM_ERROR" {
		t.Errorf("hang: %d %v", status, hdr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("504 after %v, want about 1s", d)
	}
}
