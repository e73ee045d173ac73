package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// countingUpstream is a TLS upstream that counts the TCP connections it
// accepted.
func countingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "auth="+fmt.Sprint(r.Header.Get("Authorization") != ""))
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	up.StartTLS()
	t.Cleanup(up.Close)
	return up, &conns
}

// rawTunnel opens CONNECT host through addr as agent bot (token tok) and
// runs the TLS handshake with airlock's leaf.
func rawTunnel(t *testing.T, addr, host string, ip *inproc) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := base64.StdEncoding.EncodeToString([]byte("bot:tok"))
	_, _ = io.WriteString(c, "CONNECT "+host+" HTTP/1.1\r\nHost: "+host+"\r\nProxy-Authorization: Basic "+auth+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	h, _, _ := net.SplitHostPort(host)
	tc := tls.Client(c, &tls.Config{RootCAs: ip.roots, ServerName: h})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc, bufio.NewReader(tc)
}

// The CONNECT names the target: airlock dials and handshakes the upstream
// while the agent's handshake runs, and the tunnel's first request uses
// that connection (no second dial).
func TestPredialUsedByFirstRequest(t *testing.T) {
	up, conns := countingUpstream(t)
	ip := startInproc(t, up, io.Discard)
	tc, br := rawTunnel(t, ip.addr, ip.upHost, ip)
	// No request sent yet: the upstream connection must already be there.
	waitFor(t, func() bool { return conns.Load() == 1 })
	_, _ = io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: "+ip.upHost+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "auth=true" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("upstream saw %d connections, want 1 (the predialled one reused)", n)
	}
	// A second tunnel to the same host soon after is not predialled: the
	// transport's pool serves it.
	tc2, br2 := rawTunnel(t, ip.addr, ip.upHost, ip)
	_, _ = io.WriteString(tc2, "GET /y HTTP/1.1\r\nHost: "+ip.upHost+"\r\n\r\n")
	if resp, err := http.ReadResponse(br2, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("second tunnel: %v %v", resp, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("upstream saw %d connections after a second tunnel, want 1", n)
	}
}

// Hostile: a predial goes through the dial guard like any request. A
// policy that MITMs a loopback host without allow_networks must not let
// the CONNECT alone reach it.
func TestPredialHonoursEgressGuard(t *testing.T) {
	up, conns := countingUpstream(t)
	host := strings.TrimPrefix(up.URL, "https://")
	s, l, ca := inprocServer(t, "bench/key", inprocSecret, "tok",
		fmt.Sprintf("version: 1\nrules:\n  - name: up\n    host: %q\n    credential: bench/key\n", host),
		Config{Log: zap.NewNop()})
	_ = s
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ip := &inproc{addr: l.Addr().String(), upHost: host, roots: roots}
	tc, br := rawTunnel(t, ip.addr, host, ip)
	_, _ = io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Airlock-Error") != "EGRESS_BLOCKED" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("the guarded upstream saw %d connections", n)
	}
}

// Upstream connections to one host share one client TLS config (a
// tls.Conn keeps its config for life: a clone each was ~0.35 KiB per
// stream), and it still resumes sessions. Hostile: the shared config is
// per host, so a host never inherits another's ServerName: the
// upstream's certificate (127.0.0.1, ::1, example.com) must fail for
// localhost even after 127.0.0.1's config was made and used.
func TestUpstreamConfigSharedPerHost(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	ip := startInproc(t, up, io.Discard)
	s := ip.s
	_, port, _ := net.SplitHostPort(ip.upHost)
	ctx := t.Context()
	var states []tls.ConnectionState
	for range 3 {
		c, err := s.handshakeUpstream(ctx, ip.upHost)
		if err != nil {
			t.Fatal(err)
		}
		// Read once so the client takes the session ticket sent after
		// the handshake (TLS 1.3), then close.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Read(make([]byte, 1))
		states = append(states, c.(*tls.Conn).ConnectionState())
		_ = c.Close()
	}
	if !states[2].DidResume {
		t.Error("third connection to the host did not resume its TLS session")
	}
	host, _, _ := net.SplitHostPort(ip.upHost)
	a := s.pre.cfgs.get(s.transport.TLSClientConfig, host, true)
	if b := s.pre.cfgs.get(s.transport.TLSClientConfig, host, true); a != b {
		t.Error("two connections to one host got two configs")
	}
	if a.ServerName != host || a == s.transport.TLSClientConfig {
		t.Errorf("host config: ServerName %q (want %q), base shared: %v", a.ServerName, host, a == s.transport.TLSClientConfig)
	}
	if _, err := s.handshakeUpstream(ctx, net.JoinHostPort("localhost", port)); err == nil || !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("handshake with localhost (not in the certificate) after 127.0.0.1's: %v, want a name mismatch", err)
	}
	if l := s.pre.cfgs.get(s.transport.TLSClientConfig, "localhost", true); l.ServerName != "localhost" || l == a {
		t.Fatalf("localhost config: ServerName %q, same as 127.0.0.1's: %v", l.ServerName, l == a)
	}
}

// The per-host configs follow the transport's base config (a new one
// drops them all) and are bounded.
func TestClientConfigsBaseAndBound(t *testing.T) {
	var c clientConfigs
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	a := c.get(base, "a.example", true)
	if got := a.NextProtos; len(got) != 2 || got[0] != "h2" {
		t.Fatalf("NextProtos %q, want h2 offered", got)
	}
	if n := c.get(base, "n.example", false); len(n.NextProtos) != 0 {
		t.Fatalf("NextProtos %q without forceH2", n.NextProtos)
	}
	base2 := &tls.Config{MinVersion: tls.VersionTLS13}
	if a2 := c.get(base2, "a.example", true); a2 == a || a2.MinVersion != tls.VersionTLS13 {
		t.Fatal("a new base config kept the old host configs")
	}
	for i := range maxPredialHosts + 10 {
		c.get(base2, fmt.Sprintf("h%d.example", i), true)
	}
	if n := len(c.byHost); n > maxPredialHosts {
		t.Fatalf("%d host configs kept, want at most %d", n, maxPredialHosts)
	}
}
