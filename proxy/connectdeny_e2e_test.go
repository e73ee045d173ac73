package proxy_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Errors the agent can see (issue 23 items 7, 10, 11, 13).

func TestConnectDenialAnsweredInsideTunnel(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, agent := startInjectEnv(t, nil)
	const denied = "api.unlisted.example"
	t.Run("raw client", func(t *testing.T) {
		resp, c, _ := rawConnect(t, e.proxyAddr, denied+":443", agentAuth(agent))
		if resp.StatusCode != 200 {
			t.Fatalf("CONNECT %s: %d, want 200 and the error inside", denied, resp.StatusCode)
		}
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(e.caFile())
		pool.AppendCertsFromPEM(b)
		tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: denied})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS with a leaf for the denied host: %v", err)
		}
		io.WriteString(tc, "GET /v1/models HTTP/1.1\r\nHost: "+denied+"\r\n\r\n")
		r, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		expectError(t, r.StatusCode, r.Header, string(body), 403, "ACCESS_DENIED")
	})
	proxy := e.proxyURL(agent).String()
	url := "https://" + denied + "/v1/models"
	t.Run("curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed")
		}
		out, err := exec.Command("curl", "-sS", "--proxy", proxy, "--cacert", e.caFile(), "-w", "\nstatus=%{http_code}", url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `ACCESS_DENIED`) || !strings.Contains(string(out), "status=403") {
			t.Errorf("curl shows no JSON error: %v: %s", err, out)
		}
	})
	t.Run("python requests", func(t *testing.T) {
		script := `import os, requests
r = requests.get(os.environ["URL"], proxies={"https": os.environ["P"]}, verify=os.environ["CA"], timeout=20)
print(r.status_code, r.headers.get("X-Airlock-Error"), r.text)`
		cmd := exec.Command("/usr/bin/python3", "-c", script)
		cmd.Env = append(os.Environ(), "P="+proxy, "CA="+e.caFile(), "URL="+url)
		out, err := cmd.CombinedOutput()
		if err != nil && strings.Contains(string(out), "No module named") {
			t.Skip("python3-requests not installed")
		}
		if err != nil || !strings.HasPrefix(string(out), "403 ACCESS_DENIED ") || !strings.Contains(string(out), `ACCESS_DENIED`) {
			t.Errorf("python requests: %v: %s", err, out)
		}
	})
	waitFor(t, 2*time.Second, func() error {
		if !strings.Contains(e.logs.String(), `"method":"CONNECT","host":"`+denied+`:443"`) {
			return fmt.Errorf("no CONNECT denial line")
		}
		return nil
	})
}

func TestAuthFailureReasonLogged(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	token, _ := agent.User.Password()
	cases := map[string]struct{ auth, reason string }{
		"no credentials": {"", "no credentials"},
		"unknown agent":  {"mallory:" + strings.Repeat("0", 64), "unknown agent"},
		"bad token":      {"bot:" + strings.Repeat("1", 64), "bad token"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, _, _ := rawConnect(t, e.proxyAddr, up.hostPort(), tc.auth)
			body, _ := io.ReadAll(resp.Body)
			expectError(t, resp.StatusCode, resp.Header, string(body), 407, "AUTH_FAILED")
		})
	}
	waitFor(t, 2*time.Second, func() error {
		logs := e.logs.String()
		for _, tc := range cases {
			if !strings.Contains(logs, `"code":"AUTH_FAILED","door":"proxy","reason":"`+tc.reason+`"`) {
				return fmt.Errorf("no 407 line with reason %q", tc.reason)
			}
		}
		return nil
	})
	if strings.Contains(e.logs.String(), strings.Repeat("1", 64)) || strings.Contains(e.logs.String(), token) {
		t.Errorf("a token is in the log")
	}
}

func TestUpstreamErrorCauseLogged(t *testing.T) {
	t.Parallel() // own home, own ports
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	untrusted.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)
	e, _, agent := startInjectEnv(t, nil)
	// The upstream's own certificate is in no root airlock trusts.
	host := strings.TrimPrefix(untrusted.URL, "https://")
	pol, _ := os.ReadFile(e.home + "/policy.yaml")
	e.writePolicy(string(pol) + "  - name: untrusted\n    host: \"" + host + "\"\n    credential: test/bearer\n")
	c := e.client(agent)
	waitFor(t, 3*time.Second, func() error {
		resp, err := c.Get(untrusted.URL + "/v1/x")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.Header.Get("X-Airlock-Error") != "UPSTREAM_ERROR" {
			return fmt.Errorf("status %d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
		}
		return nil
	})
	waitFor(t, 2*time.Second, func() error {
		for _, l := range strings.Split(e.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["code"] == "UPSTREAM_ERROR" {
				if r, _ := m["reason"].(string); strings.Contains(r, "x509") || strings.Contains(r, "certificate") {
					return nil
				}
				return fmt.Errorf("UPSTREAM_ERROR line without the x509 cause: %s", l)
			}
		}
		return fmt.Errorf("no UPSTREAM_ERROR line")
	})
}

func TestAgentAddWorksAtOnce(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, _ := startInjectEnv(t, nil)
	for i := range 3 {
		agent := e.addAgent(fmt.Sprintf("fresh%d", i))
		status, sr, _, body := getJSON(t, e.client(agent), up.URL+"/bearer/now", nil)
		if status != 200 || sr.Auth != digest("Bearer "+secrets["test/bearer"]) {
			t.Fatalf("request right after `agent add`: %d %s", status, body)
		}
	}
}

// selfSigned is a fresh certificate for 127.0.0.1 that no root vouches for.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestAgentRemoveRefusedAtOnce(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, _ := startInjectEnv(t, nil)
	for i := range 3 {
		name := fmt.Sprintf("gone%d", i)
		agent := e.addAgent(name)
		if status, _, _, body := getJSON(t, e.client(agent), up.URL+"/bearer/now", nil); status != 200 {
			t.Fatalf("before rm: %d %s", status, body)
		}
		e.mustRun("", "agent", "rm", name)
		resp, err := e.client(agent).Get(up.URL + "/bearer/after-rm")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("request right after `agent rm`: %d, want the CONNECT refused (407)", resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "Proxy Authentication Required") {
			t.Fatalf("request right after `agent rm`: %v, want 407", err)
		}
	}
}

func TestReloadErrorInStatusAndReadyz(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	e.writePolicy("version: 1\nrules:\n  - name: broken\n    host: \"x.example\"\n    action: frobnicate\n")
	var st struct {
		Policy struct {
			LastReloadError *struct{ File, Error string } `json:"last_reload_error"`
			Stale           string                        `json:"stale"`
		} `json:"policy"`
	}
	waitFor(t, 3*time.Second, func() error {
		_, body := e.adminGet("/v1/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return fmt.Errorf("status %q: %v", body, err)
		}
		if st.Policy.LastReloadError == nil {
			return fmt.Errorf("no last_reload_error in %s", body)
		}
		return nil
	})
	if !strings.Contains(st.Policy.LastReloadError.Error, "policy.yaml:5:") || !strings.Contains(st.Policy.Stale, "older than") {
		t.Errorf("status: %+v, want the file:line:col of the error and the stale note", st.Policy)
	}
	code, body := e.adminGet("/readyz")
	if code != 200 || !strings.Contains(body, "older than") || !strings.Contains(body, "policy.yaml:5:") {
		t.Errorf("/readyz %d %s: want ready with the stale detail", code, body)
	}
	e.extraEnv = append(e.extraEnv, "AIRLOCK_ADMIN="+e.adminAddr)
	out, _, _ := e.run("", "doctor", "--json")
	var rep struct {
		Checks []struct{ Name, Status, Detail string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	for _, c := range rep.Checks {
		if c.Name == "reload" {
			if c.Status != "warn" || !strings.Contains(c.Detail, "policy.yaml:5:") {
				t.Errorf("doctor reload check: %+v, want a warning with the file:line:col", c)
			}
			return
		}
	}
	t.Errorf("doctor has no reload check: %s", out)
}

func TestEgressBlockedNamesResolvedAddress(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	agent := e.addAgent("bot")
	_, port, _ := net.SplitHostPort(up.hostPort())
	e.writePolicy("version: 1\nrules:\n  - name: local\n    host: \"localhost:" + port + "\"\n")
	e.serve()
	status, _, hdr, body := getJSON(t, e.client(agent), "https://localhost:"+port+"/v1/x", nil)
	expectError(t, status, hdr, body, 403, "EGRESS_BLOCKED")
	if !strings.Contains(body, "127.0.0.1") {
		t.Errorf("EGRESS_BLOCKED does not name the refused address: %s", body)
	}
}
