package proxy

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/transparent"
	"github.com/airlock/airlock/vault"
)

// transparentServer is a Server with agent bot, a tunnel rule for
// localhost (loopback is not in allow_networks) and a MITM rule.
func transparentServer(t *testing.T) (*Server, *vault.Vault, *observer.ObservedLogs) {
	t.Helper()
	v, err := vault.Create(filepath.Join(t.TempDir(), "vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	agent, _, err := vault.NewAgent("bot", make([]byte, ed25519.SeedSize), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Update(func(d *vault.Data) error { d.SetAgent(agent); return nil }); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("transparent.yaml", []byte(`version: 1
rules:
  - name: local-tunnel
    host: localhost
    action: tunnel
`))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.NewCA("transparent", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	s, err := New(Config{Vault: v, Policy: pol, Certs: certs.NewCache(ca, 10), Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	return s, v, logs
}

// handOver runs HandleTransparent on one end of a loopback TCP pair and
// returns the other end (the redirected client) and a channel closed when
// the handler returned.
func handOver(t *testing.T, s *Server, c transparent.Conn) (net.Conn, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Conn = server
	done := make(chan struct{})
	go func() { defer close(done); s.HandleTransparent(context.Background(), &c) }()
	return client, done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("HandleTransparent did not return (connection not closed?)")
	}
}

// TestHandleTransparentRefusals: every refusal is recorded on the
// transparent door with its code and the connection is closed; a plain
// HTTP client reads the JSON error.
func TestHandleTransparentRefusals(t *testing.T) {
	dst := netip.MustParseAddrPort("203.0.113.9:80")
	cases := map[string]struct {
		conn     transparent.Conn
		code     string
		reason   string
		wantBody bool
	}{
		"no server name":      {conn: transparent.Conn{OrigDst: dst, Agent: "bot"}, code: CodeAccessDenied, reason: ErrNoServerName.Error(), wantBody: true},
		"unlisted host":       {conn: transparent.Conn{OrigDst: dst, ServerName: "evil.example", Agent: "bot", TLS: true}, code: CodeAccessDenied, reason: "policy"},
		"unknown agent":       {conn: transparent.Conn{OrigDst: dst, ServerName: "localhost", Agent: "ghost"}, code: CodeAuthFailed, reason: "agent not registered", wantBody: true},
		"loopback via a rule": {conn: transparent.Conn{OrigDst: netip.MustParseAddrPort("127.0.0.1:443"), ServerName: "localhost", Agent: "bot"}, code: "EGRESS_BLOCKED", reason: "dial", wantBody: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, _, logs := transparentServer(t)
			client, done := handOver(t, s, tc.conn)
			if !tc.conn.TLS {
				_, _ = io.WriteString(client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			}
			body, _ := io.ReadAll(client)
			waitDone(t, done)
			if tc.wantBody {
				resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(body))), nil)
				if err != nil || resp.Header.Get("X-Airlock-Error") != tc.code {
					t.Fatalf("plain HTTP client read %q (%v), want X-Airlock-Error %s", body, err, tc.code)
				}
			} else if len(body) != 0 {
				t.Fatalf("TLS client read %q, want a closed connection", body)
			}
			if n := testutil.ToFloat64(s.metrics.Requests.WithLabelValues(orAgent(tc.conn.Agent), "local-tunnel", decisionDeny, tc.code, "transparent", "proxy")) +
				testutil.ToFloat64(s.metrics.Requests.WithLabelValues(orAgent(tc.conn.Agent), "none", decisionDeny, tc.code, "transparent", "proxy")) +
				testutil.ToFloat64(s.metrics.Requests.WithLabelValues(orAgent(tc.conn.Agent), "local-tunnel", decisionError, tc.code, "transparent", "proxy")); n != 1 {
				t.Fatalf("requests{door=transparent,code=%s} = %v, want 1", tc.code, n)
			}
			if got := logs.FilterMessage("transparent connection refused").FilterField(zap.String("reason", tc.reason)).Len(); got != 1 {
				t.Fatalf("want one refusal logged with reason %q; logs: %v", tc.reason, logs.All())
			}
		})
	}
}

func orAgent(a string) string {
	if a == "" {
		return "unknown"
	}
	return a
}

// TestRunTokenLifecycle: a run token authenticates its agent only, until
// revoked or expired; the agent's disabling also ends it.
func TestRunTokenLifecycle(t *testing.T) {
	s, v, _ := transparentServer(t)
	auth := func(name, token string) bool {
		r, _ := http.NewRequest(http.MethodConnect, "http://x", nil)
		r.SetBasicAuth(name, token)
		r.Header.Set("Proxy-Authorization", r.Header.Get("Authorization"))
		_, err := s.authenticate(r)
		return err == nil
	}
	tok, id, _, err := v.IssueRunToken("bot", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !auth("bot", tok) {
		t.Fatal("fresh run token refused")
	}
	altered := tok[:len(tok)-1] + "0"
	if tok[len(tok)-1] == '0' { // the change must change it (this test failed when the token ended in 0)
		altered = tok[:len(tok)-1] + "1"
	}
	if auth("other", tok) || auth("bot", altered) || auth("bot", "run.0000000000000000.00") {
		t.Fatal("run token accepted for another agent or altered")
	}
	if err := v.RevokeRunToken(id); err != nil {
		t.Fatal(err)
	}
	if auth("bot", tok) {
		t.Fatal("revoked run token accepted")
	}
	short, _, _, err := v.IssueRunToken("bot", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the expiry is wall-clock; nothing to poll
	if auth("bot", short) {
		t.Fatal("expired run token accepted")
	}
	if _, _, _, err := v.IssueRunToken("ghost", time.Minute); err == nil {
		t.Fatal("run token issued for an unknown agent")
	}
	n := 0
	for k := range v.Snapshot().System {
		if strings.HasPrefix(k, vault.RunTokenKey) {
			n++
		}
	}
	if n != 1 { // the expired one stays until the next issue/revoke prunes it
		t.Fatalf("%d run token entries, want 1", n)
	}
}
