package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestUntrustedUpstreamGetsNoCredential plays two impostors of an API on
// loopback: one with a certificate of its own (not under the roots
// airlock trusts), one replaying the genuine server's certificate, which
// is public, without its private key. airlock verifies each upstream
// chain once and reuses the verification (package tlsverify): neither
// impostor may get a request, before or after the genuine server's chain
// is in that cache.
func TestUntrustedUpstreamGetsNoCredential(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	var reached atomic.Int32
	impostor := func(cert tls.Certificate) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached.Add(1)
			w.WriteHeader(http.StatusTeapot)
		}))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	own := impostor(selfSigned(t)) // connectdeny_e2e_test.go
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	replay := impostor(tls.Certificate{Certificate: [][]byte{up.Certificate().Raw}, PrivateKey: key})

	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("api/key", "sk-upstream-tls-7f3a9c21e5d8")
	agent := e.addAgent("bot")
	var rules strings.Builder
	rules.WriteString("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n")
	for i, s := range []*httptest.Server{up.Server, own, replay} {
		rules.WriteString("  - name: r" + string(rune('0'+i)) + "\n    host: \"" + strings.TrimPrefix(s.URL, "https://") +
			"\"\n    credential: api/key\n")
	}
	e.writePolicy(rules.String())
	e.serve()
	c := e.client(agent)

	refused := func(when string) {
		t.Helper()
		for _, s := range []*httptest.Server{own, replay} {
			status, hdr, body := agentCall(t, c, "GET", s.URL+"/v1/me", "")
			if status != http.StatusBadGateway || hdr.Get("X-Airlock-Error") != "UPSTREAM_ERROR" {
				t.Errorf("%s, impostor %s: %d %q %s; want 502 UPSTREAM_ERROR", when, s.URL, status, hdr.Get("X-Airlock-Error"), body)
			}
		}
		if n := reached.Load(); n != 0 {
			t.Fatalf("%s: an impostor received %d requests", when, n)
		}
	}
	refused("before the genuine server was seen")
	for i := range 3 { // new connections each time: the chain's verification is cached
		status, _, body := agentCall(t, e.client(agent), "GET", up.URL+"/v1/me?i="+string(rune('0'+i)), "")
		if status != http.StatusOK {
			t.Fatalf("genuine upstream: %d %s", status, body)
		}
	}
	refused("after the genuine server's chain was verified")
}
