package proxy_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Secrets used by the e2e tests; every test greps airlock's output for them.
var secrets = map[string]string{
	"test/bearer": "sk-bearer-4f0c2a77e1d94b",
	"test/apikey": "ak-apikey-9b13c5d0e2f7aa",
	"test/basic":  "alice:pw-basic-3e8d1c55",
	"test/pass":   "pw-only-7a1b2c3d4e5f",
	"test/custom": "ct-custom-0d9e8f7a6b5c",
	"test/query":  "qk-query-1a2b3c4d5e6f7",
}

const injectPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8", "::1/128"]
rules:
  - name: bearer
    host: "{{UP}}"
    paths: ["/bearer/**"]
    credential: test/bearer
  - name: apikey
    host: "{{UP}}"
    paths: ["/apikey/**"]
    credential: test/apikey
    inject: {type: api_key}
  - name: basic
    host: "{{UP}}"
    paths: ["/basic/**"]
    credential: test/basic
    inject: {type: basic}
  - name: basic-user
    host: "{{UP}}"
    paths: ["/basicuser/**"]
    credential: test/pass
    inject: {type: basic, username: bob}
  - name: custom
    host: "{{UP}}"
    paths: ["/custom/**"]
    credential: test/custom
    inject: {type: custom, header: X-Custom, format: "Token {secret}"}
  - name: query
    host: "{{UP}}"
    paths: ["/query/**"]
    credential: test/query
    inject: {type: query, param: key}
  - name: missing
    host: "{{UP}}"
    paths: ["/missing/**"]
    credential: test/not-there
  - name: blocked
    host: "{{UP}}"
    paths: ["/forbidden/**"]
    action: deny
  - name: ws
    host: "{{UP}}"
    paths: ["/x/ws"]
    credential: test/bearer
  - name: open
    host: "{{UP}}"
    paths: ["/open/**", "/x/**"]
  - name: sse
    host: "{{UP}}"
    paths: ["/sse/**"]
    credential: test/bearer
  - name: down
    host: "127.0.0.1:{{DOWN}}"
    credential: test/bearer
`

// startInjectEnv runs airlock with injectPolicy against one upstream;
// serveArgs are added to airlock serve's flags.
func startInjectEnv(t *testing.T, extra http.Handler, serveArgs ...string) (*env, *upstream, *url.URL) {
	up := newUpstream(t, extra)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	for p, v := range secrets {
		e.setSecret(p, v)
	}
	agent := e.addAgent("bot")
	e.downPort = closedPort(t)
	e.writePolicy(strings.NewReplacer("{{UP}}", up.hostPort(), "{{DOWN}}", e.downPort).Replace(injectPolicy))
	e.serve(serveArgs...)
	t.Cleanup(func() { assertNoSecrets(t, "airlock logs", e.logs.String()) })
	return e, up, agent
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for path, v := range secrets {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), url.QueryEscape(v)} {
			if strings.Contains(text, form) {
				t.Errorf("%s contains the secret of %s", where, path)
			}
		}
	}
}

func TestInjectionTypes(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := map[string]struct {
		path  string
		check func(s seenReq) (got, want string)
	}{
		"bearer": {"/bearer/v1/models", func(s seenReq) (string, string) {
			return s.Auth, digest("Bearer " + secrets["test/bearer"])
		}},
		"api_key": {"/apikey/v1", func(s seenReq) (string, string) { return s.APIKey, digest(secrets["test/apikey"]) }},
		"basic user:password": {"/basic/", func(s seenReq) (string, string) {
			return s.Auth, digest("Basic " + b64(secrets["test/basic"]))
		}},
		"basic with username": {"/basicuser/", func(s seenReq) (string, string) {
			return s.Auth, digest("Basic " + b64("bob:"+secrets["test/pass"]))
		}},
		"custom with format": {"/custom/", func(s seenReq) (string, string) {
			return s.Custom, digest("Token " + secrets["test/custom"])
		}},
		"query": {"/query/search?q=cats&key=agent-supplied", func(s seenReq) (string, string) {
			return s.KeyParam + " " + s.Query, digest(secrets["test/query"]) + " q=cats"
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, seen, _, body := getJSON(t, c, up.URL+tc.path, nil)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			if got, want := tc.check(seen); got != want {
				t.Errorf("upstream saw %q, want %q", got, want)
			}
			if seen.ProxyAuth != "" {
				t.Errorf("Proxy-Authorization forwarded upstream")
			}
			assertNoSecrets(t, "agent response", body)
		})
	}
}

func TestAgentAuthorizationReplaced(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	hdr := http.Header{"Authorization": {"Bearer agent-own-key", "Basic Zm9vOmJhcg=="}}
	code, seen, _, body := getJSON(t, e.client(agent), up.URL+"/bearer/x", hdr)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if seen.AuthCount != 1 || seen.Auth != digest("Bearer "+secrets["test/bearer"]) {
		t.Errorf("upstream saw %d Authorization headers (digest %s); want exactly the injected one", seen.AuthCount, seen.Auth)
	}
}

// errorCase expects airlock's own JSON error.
func expectError(t *testing.T, status int, hdr http.Header, body string, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || hdr.Get("X-Airlock-Error") != wantCode {
		t.Fatalf("got %d %q, want %d %s; body: %s", status, hdr.Get("X-Airlock-Error"), wantStatus, wantCode, body)
	}
	var doc struct {
		Error struct{ Code, Message, Suggestion string }
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Error.Code != wantCode || doc.Error.Message == "" || doc.Error.Suggestion == "" {
		t.Errorf("error body %q: want JSON with code %s, message and suggestion", body, wantCode)
	}
}

func TestPipelineErrors(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	cases := map[string]struct {
		url    string
		status int
		code   string
	}{
		"path denied by rule":  {up.URL + "/forbidden/x", 403, "ACCESS_DENIED"},
		"no rule for path":     {up.URL + "/nowhere", 403, "ACCESS_DENIED"},
		"credential not found": {up.URL + "/missing/x", 502, "CREDENTIAL_NOT_FOUND"},
		"upstream down":        {"https://127.0.0.1:" + e.downPort + "/", 502, "UPSTREAM_ERROR"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, _, hdr, body := getJSON(t, c, tc.url, nil)
			expectError(t, status, hdr, body, tc.status, tc.code)
		})
	}
}

// rawConnect opens a CONNECT through the proxy and returns the response.
func rawConnect(t *testing.T, proxyAddr, target, auth string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if auth != "" {
		fmt.Fprintf(c, "Proxy-Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(auth)))
	}
	io.WriteString(c, "\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	return resp, c, br
}

func agentAuth(u *url.URL) string {
	p, _ := u.User.Password()
	return u.User.Username() + ":" + p
}

func TestConnectRefusals(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, _ := startInjectEnv(t, nil)
	cases := map[string]struct {
		target, auth string
		status       int
		code         string
	}{
		"no credentials": {up.hostPort(), "", 407, "AUTH_FAILED"},
		"wrong token":    {up.hostPort(), "bot:not-the-token", 407, "AUTH_FAILED"},
		"unknown agent":  {up.hostPort(), "mallory:" + strings.Repeat("0", 64), 407, "AUTH_FAILED"},
		// unmatched host: answered inside the tunnel (connectdeny_e2e_test.go)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, _, _ := rawConnect(t, e.proxyAddr, tc.target, tc.auth)
			body, _ := io.ReadAll(resp.Body)
			expectError(t, resp.StatusCode, resp.Header, string(body), tc.status, tc.code)
			if tc.status == 407 && resp.Header.Get("Proxy-Authenticate") != `Basic realm="airlock"` {
				t.Errorf("407 without Proxy-Authenticate")
			}
		})
	}
}

// mitmTLS completes a CONNECT and a TLS handshake trusting airlock's CA.
func mitmTLS(t *testing.T, e *env, agent *url.URL, target, sni string) *tls.Conn {
	t.Helper()
	resp, c, _ := rawConnect(t, e.proxyAddr, target, agentAuth(agent))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %d", target, resp.StatusCode)
	}
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(e.caFile())
	pool.AppendCertsFromPEM(b)
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: sni})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS through airlock: %v", err)
	}
	return tc
}

func TestHostMustMatchConnect(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	other := newUpstream(t, nil) // a second host the agent wants the credential sent to
	for name, reqLine := range map[string]string{
		"Host header":   "GET /bearer/x HTTP/1.1\r\nHost: " + other.hostPort() + "\r\n\r\n",
		"absolute URI":  "GET https://" + other.hostPort() + "/bearer/x HTTP/1.1\r\nHost: " + other.hostPort() + "\r\n\r\n",
		"absolute+Host": "GET https://" + other.hostPort() + "/bearer/x HTTP/1.1\r\nHost: " + up.hostPort() + "\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			tc := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
			io.WriteString(tc, reqLine)
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusMisdirectedRequest {
				t.Errorf("status %d, want 421: %s", resp.StatusCode, body)
			}
		})
	}
	if n := len(other.allHeaders()); n != 0 {
		t.Errorf("second upstream received %d requests", n)
	}
}

func TestTunnelPassthrough(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: pass\n    host: \"" + up.hostPort() + "\"\n    action: tunnel\n")
	e.serve()
	// The client trusts only the upstream's own certificate: a MITM would fail.
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	c := &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(e.proxyURL(agent)),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	resp, err := c.Get(up.URL + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].Equal(up.Certificate()) == false {
		t.Errorf("tunnel: status %d, peer cert not the upstream's", resp.StatusCode)
	}
}

func TestEgressGuard(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	_, port, _ := net.SplitHostPort(up.hostPort())
	e.writePolicy("version: 1\nrules:\n  - name: loop\n    host: \"127.0.0.1:" + port + "\"\n    credential: test/bearer\n" +
		"  - name: byname\n    host: \"localhost:" + port + "\"\n    credential: test/bearer\n")
	e.serve()
	c := e.client(agent)
	for name, u := range map[string]string{
		"loopback IP":                "https://127.0.0.1:" + port + "/",
		"name resolving to loopback": "https://localhost:" + port + "/",
	} {
		t.Run(name, func(t *testing.T) {
			status, _, hdr, body := getJSON(t, c, u, nil)
			expectError(t, status, hdr, body, 403, "EGRESS_BLOCKED")
		})
	}
	if n := len(up.allHeaders()); n != 0 {
		t.Errorf("upstream reached %d times despite the guard", n)
	}
}

func TestSSEStreamsEventByEvent(t *testing.T) {
	t.Parallel() // own home, own ports
	release := make(chan struct{})
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select { // hold the stream open until the agent has seen event 1
		case <-release:
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "data: second\n\n")
	})
	e, up, agent := startInjectEnv(t, sse)
	resp, err := e.client(agent).Get(up.URL + "/x/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Errorf("second event missing: %q", rest)
	}
}

func TestCurlAndPython(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	proxy := e.proxyURL(agent).String()
	want := digest("Bearer " + secrets["test/bearer"])
	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed")
		}
		out, err := exec.Command("curl", "-sS", "--proxy", proxy, "--cacert", e.caFile(), up.URL+"/bearer/curl").CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("curl: %v: %s", err, out)
		}
	})
	t.Run("python urllib", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 not installed")
		}
		script := `import json, os, ssl, urllib.request
ctx = ssl.create_default_context(cafile=os.environ["CA"])
h = urllib.request.ProxyHandler({"https": os.environ["HTTPS_PROXY"]})
o = urllib.request.build_opener(h, urllib.request.HTTPSHandler(context=ctx))
print(o.open(os.environ["URL"]).read().decode())`
		cmd := exec.Command(py, "-c", script)
		cmd.Env = append(os.Environ(), "HTTPS_PROXY="+proxy, "CA="+e.caFile(), "URL="+up.URL+"/bearer/python")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("python: %v: %s", err, out)
		}
	})
}
