package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"
)

// handshake runs one TLS handshake over loopback: the server uses
// c.TLSConfig(fallback), the client trusts only ca and verifies name.
func handshake(t *testing.T, network, addr string, c *Cache, fallback, name string) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		srv := tls.Server(conn, c.TLSConfig(fallback))
		serverErr <- srv.Handshake()
	}()
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.Cert)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(dialer, network, ln.Addr().String(), &tls.Config{
		RootCAs:    roots,
		ServerName: name,
		NextProtos: []string{"h2", "http/1.1"},
	})
	if err != nil {
		<-serverErr
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	if err := <-serverErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return conn.ConnectionState(), nil
}

func TestTLSHandshake(t *testing.T) {
	cases := map[string]struct {
		network, addr  string
		fallback, name string // name: the client's ServerName (SNI unless an IP)
		wantErr        bool
	}{
		"sni localhost":         {network: "tcp4", addr: "127.0.0.1:0", fallback: "ignored.example", name: "localhost"},
		"no sni, fallback ipv4": {network: "tcp4", addr: "127.0.0.1:0", fallback: "127.0.0.1:443", name: "127.0.0.1"},
		"no sni, fallback ipv6": {network: "tcp6", addr: "[::1]:0", fallback: "[::1]:443", name: "::1"},
		"sni wins over host":    {network: "tcp4", addr: "127.0.0.1:0", fallback: "127.0.0.1", name: "LocalHost"},
		"fallback wrong name":   {network: "tcp4", addr: "127.0.0.1:0", fallback: "localhost", name: "127.0.0.1", wantErr: true},
	}
	c := NewCache(testCA(t), 10)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			state, err := handshake(t, tc.network, tc.addr, c, tc.fallback, tc.name)
			if tc.wantErr {
				var hostErr x509.HostnameError
				if !errors.As(err, &hostErr) {
					t.Fatalf("handshake error = %v, want a hostname mismatch", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if state.NegotiatedProtocol != "h2" { // the client offers h2 first
				t.Errorf("ALPN = %q, want h2", state.NegotiatedProtocol)
			}
			if len(state.PeerCertificates) != 2 {
				t.Errorf("peer sent %d certificates, want leaf and CA", len(state.PeerCertificates))
			}
		})
	}
}

func TestTLSConfigRefusesOldTLS(t *testing.T) {
	c := NewCache(testCA(t), 10)
	cfg := c.TLSConfig("localhost")
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		done <- tls.Server(conn, cfg).Handshake()
	}()
	conn, err := tls.Dial("tcp4", ln.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // only the version matters here
		MaxVersion:         tls.VersionTLS11,
		ServerName:         "localhost",
	})
	if err == nil {
		conn.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	if <-done == nil {
		t.Fatal("server accepted TLS 1.1")
	}
}

// One config per host, shared by its connections, each still serving
// its own host's leaf without SNI; the table of configs stays bounded.
func TestTLSConfigSharedPerHost(t *testing.T) {
	c := NewCache(testCA(t), 2)
	a, b := c.TLSConfig("127.0.0.1:443"), c.TLSConfig("localhost:443")
	if a != c.TLSConfig("127.0.0.1:443") || a == b {
		t.Fatalf("configs: same host %p/%p, other host %p: want one per host", a, c.TLSConfig("127.0.0.1:443"), b)
	}
	for _, fallback := range []string{"localhost:443", "127.0.0.1:443"} { // both configs in use, in turn
		if _, err := handshake(t, "tcp4", "127.0.0.1:0", c, fallback, "127.0.0.1"); (err != nil) != (fallback != "127.0.0.1:443") {
			t.Fatalf("no-SNI handshake with fallback %s: %v (the leaf must be the fallback host's)", fallback, err)
		}
	}
	c.TLSConfig("third.example:443")
	c.cfgMu.Lock()
	n := len(c.configs)
	c.cfgMu.Unlock()
	if n > 2 {
		t.Fatalf("%d configs held, want at most the cache bound 2", n)
	}
}

// A default Go client (which offers X25519MLKEM768 and X25519) gets the
// post-quantum hybrid from TLSConfig and classical X25519 from
// LocalTLSConfig; each config is still one per host.
func TestLocalTLSConfigKeyExchange(t *testing.T) {
	c := NewCache(testCA(t), 10)
	roots := x509.NewCertPool()
	roots.AddCert(c.ca.Cert)
	for _, tc := range []struct {
		cfg  *tls.Config
		want tls.CurveID
	}{
		{c.TLSConfig("api.example.com"), tls.X25519MLKEM768},
		{c.LocalTLSConfig("api.example.com"), tls.X25519},
	} {
		a, b := net.Pipe()
		srv := tls.Server(a, tc.cfg)
		done := make(chan error, 1)
		go func() { done <- srv.Handshake() }()
		cl := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: "api.example.com"})
		if err := cl.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := cl.ConnectionState().CurveID; got != tc.want {
			t.Errorf("key exchange %v, want %v", got, tc.want)
		}
		a.Close()
		b.Close()
	}
	if c.LocalTLSConfig("api.example.com") != c.LocalTLSConfig("api.example.com") || c.LocalTLSConfig("api.example.com") == c.TLSConfig("api.example.com") {
		t.Fatal("want one local config per host, apart from the usual one")
	}
}
