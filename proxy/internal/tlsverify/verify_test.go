package tlsverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// pki is a root, an intermediate and a leaf for names, valid from t0-1h
// to leafEnd.
type pki struct {
	roots   *x509.CertPool
	chain   []*x509.Certificate // leaf, intermediate
	leafKey *ecdsa.PrivateKey
}

func newPKI(t testing.TB, leafEnd time.Time, names ...string) *pki {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ca := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: t0.Add(-time.Hour),
			NotAfter: t0.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootKey, midKey, leafKey := key(), key(), key()
	root := mk(ca(1, "test root"), ca(1, "test root"), &rootKey.PublicKey, rootKey)
	mid := mk(ca(2, "test intermediate"), root, &midKey.PublicKey, rootKey)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: names[0]}, NotBefore: t0.Add(-time.Hour),
		NotAfter: leafEnd, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leafT.IPAddresses = append(leafT.IPAddresses, ip)
		} else {
			leafT.DNSNames = append(leafT.DNSNames, n)
		}
	}
	leaf := mk(leafT, mid, &leafKey.PublicKey, midKey)
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &pki{roots: roots, chain: []*x509.Certificate{leaf, mid}, leafKey: leafKey}
}

// TestCachedVerifyRefuses: a verification in the cache is only ever
// reused for the same chain and roots, inside the chain's validity and
// TTL, and for a name the leaf holds.
func TestCachedVerifyRefuses(t *testing.T) {
	p := newPKI(t, t0.Add(2*time.Hour), "api.example.com")
	other := newPKI(t, t0.Add(2*time.Hour), "api.example.com") // same names, another root
	var c Cache
	if err := c.Verify("api.example.com", p.roots, p.chain, t0); err != nil {
		t.Fatalf("genuine chain: %v", err)
	}
	for _, tc := range []struct {
		name  string
		host  string
		roots *x509.CertPool
		chain []*x509.Certificate
		at    time.Time
	}{
		{"a name the leaf lacks, same chain", "evil.example.com", p.roots, p.chain, t0},
		{"another chain, same name", "api.example.com", p.roots, other.chain, t0},
		{"leaf alone (no intermediate)", "api.example.com", p.roots, p.chain[:1], t0},
		{"expired leaf", "api.example.com", p.roots, p.chain, t0.Add(3 * time.Hour)},
		{"clock before the chain", "api.example.com", p.roots, p.chain, t0.Add(-2 * time.Hour)},
		{"other roots", "api.example.com", other.roots, p.chain, t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Verify(tc.host, tc.roots, tc.chain, tc.at)
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				t.Fatalf("verified (err %v); want a *tls.CertificateVerificationError", err)
			}
		})
	}
	if err := c.Verify("api.example.com", p.roots, nil, t0); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("no certificate: %v", err)
	}
}

func TestCacheHitsAndTTL(t *testing.T) {
	p := newPKI(t, t0.Add(48*time.Hour), "api.example.com", "*.cdn.example.com")
	var c Cache
	for i, tc := range []struct {
		name string
		at   time.Time
	}{ // one chain for several names (a wildcard), verified once per TTL
		{"api.example.com", t0}, {"api.example.com", t0.Add(time.Minute)}, {"a.cdn.example.com", t0.Add(2 * time.Minute)},
		{"b.cdn.example.com", t0.Add(TTL - time.Second)}, {"api.example.com", t0.Add(TTL + time.Second)},
	} {
		if err := c.Verify(tc.name, p.roots, p.chain, tc.at); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
	}
	if n := c.verifies.Load(); n != 2 { // t0, and once the TTL passed
		t.Errorf("%d chain verifications for 5 handshakes over %v, want 2", n, TTL+time.Second)
	}
	short := newPKI(t, t0.Add(time.Minute), "api.example.com")
	_ = c.Verify("api.example.com", short.roots, short.chain, t0)
	if err := c.Verify("api.example.com", short.roots, short.chain, t0.Add(2*time.Minute)); err == nil {
		t.Error("a chain past its NotAfter was taken from the cache")
	}
}

// handshake runs one TLS handshake: server presents cert, the client
// dials name with cfg.
func handshake(t *testing.T, cert tls.Certificate, cfg *tls.Config) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{cert}, Time: func() time.Time { return t0 }})
	go func() { _ = srv.Handshake(); _ = a.Close() }()
	return tls.Client(b, cfg).Handshake()
}

func clientConfig(c *Cache, p *pki, name string) *tls.Config {
	cfg := &tls.Config{RootCAs: p.roots, ServerName: name, Time: func() time.Time { return t0 }, MinVersion: tls.VersionTLS12}
	c.Apply(cfg)
	return cfg
}

// TestImpostorWithGenuineChain plays a server that replays the genuine
// certificate chain (it is public: any client of the real server has it)
// without the private key. The chain is in the cache from a genuine
// handshake; the impostor must still fail, on the handshake's signature,
// in TLS 1.3 and 1.2.
func TestImpostorWithGenuineChain(t *testing.T) {
	p := newPKI(t, t0.Add(48*time.Hour), "api.example.com")
	genuine := tls.Certificate{Certificate: [][]byte{p.chain[0].Raw, p.chain[1].Raw}, PrivateKey: p.leafKey}
	stolen, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor := tls.Certificate{Certificate: genuine.Certificate, PrivateKey: stolen}
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		var c Cache
		cfg := clientConfig(&c, p, "api.example.com")
		cfg.MaxVersion = v
		if err := handshake(t, genuine, cfg); err != nil {
			t.Fatalf("TLS %x: genuine server: %v", v, err)
		}
		if c.verifies.Load() != 1 {
			t.Fatalf("TLS %x: the genuine handshake verified %d chains, want 1", v, c.verifies.Load())
		}
		err := handshake(t, impostor, cfg)
		if err == nil || !strings.Contains(err.Error(), "signature") {
			t.Errorf("TLS %x: impostor with the genuine chain: %v, want a signature error", v, err)
		}
		if err := handshake(t, genuine, cfg); err != nil || c.verifies.Load() != 1 {
			t.Errorf("TLS %x: second genuine handshake: %v, %d chain verifications (want 1: cached)", v, err, c.verifies.Load())
		}
	}
}

// TestApplyRefusesUntrusted: through a config, an untrusted chain and a
// wrong name fail as crypto/tls's own verification does.
func TestApplyRefusesUntrusted(t *testing.T) {
	p := newPKI(t, t0.Add(48*time.Hour), "api.example.com", "127.0.0.1")
	cert := tls.Certificate{Certificate: [][]byte{p.chain[0].Raw, p.chain[1].Raw}, PrivateKey: p.leafKey}
	var c Cache
	for _, name := range []string{"api.example.com", "127.0.0.1"} {
		if err := handshake(t, cert, clientConfig(&c, p, name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	untrusted := newPKI(t, t0.Add(48*time.Hour), "api.example.com")
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"wrong name", clientConfig(&c, p, "other.example.com")},
		{"other roots", clientConfig(&c, untrusted, "api.example.com")},
	} {
		err := handshake(t, cert, tc.cfg)
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) {
			t.Errorf("%s: %v, want a *tls.CertificateVerificationError", tc.name, err)
		}
	}
	skip := &tls.Config{InsecureSkipVerify: true}
	c.Apply(skip)
	if skip.VerifyConnection != nil {
		t.Error("Apply changed a config that skips verification")
	}
}

func BenchmarkVerify(b *testing.B) {
	p := newPKI(b, t0.Add(48*time.Hour), "api.example.com")
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			var c Cache
			_ = c.Verify("api.example.com", p.roots, p.chain, t0)
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c Cache
		for b.Loop() {
			_ = c.Verify("api.example.com", p.roots, p.chain, t0)
		}
	})
}

// TestResumedHandshakeVerified: a resumed session runs the verification
// too (InsecureSkipVerify makes crypto/tls skip its own check of the
// session's chain and name), and a session of one name is not taken for
// another.
func TestResumedHandshakeVerified(t *testing.T) {
	p := newPKI(t, t0.Add(48*time.Hour), "api.example.com", "other.example.com")
	cert := tls.Certificate{Certificate: [][]byte{p.chain[0].Raw, p.chain[1].Raw}, PrivateKey: p.leafKey}
	serverCfg := &tls.Config{Certificates: []tls.Certificate{cert}, Time: func() time.Time { return t0 }}
	var c Cache
	sessions := tls.NewLRUClientSessionCache(8)
	var checks int
	dial := func(name string) (resumed bool, err error) {
		cfg := &tls.Config{RootCAs: p.roots, ServerName: name, Time: func() time.Time { return t0 }, ClientSessionCache: sessions,
			VerifyConnection: func(tls.ConnectionState) error { checks++; return nil }}
		c.Apply(cfg)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() { // a byte after the handshake: the client reads TLS 1.3's session ticket before it
			srv := tls.Server(a, serverCfg)
			if srv.Handshake() == nil {
				_, _ = srv.Write([]byte("x"))
			}
		}()
		tc := tls.Client(b, cfg)
		if err := tc.Handshake(); err != nil {
			return false, err
		}
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			return false, err
		}
		return tc.ConnectionState().DidResume, nil
	}
	if resumed, err := dial("api.example.com"); err != nil || resumed {
		t.Fatalf("first handshake: resumed %v, %v", resumed, err)
	}
	if resumed, err := dial("api.example.com"); err != nil || !resumed {
		t.Fatalf("second handshake: resumed %v, %v (want a resumption)", resumed, err)
	}
	if checks != 2 {
		t.Errorf("VerifyConnection ran %d times over a full and a resumed handshake, want 2", checks)
	}
	if resumed, err := dial("other.example.com"); err != nil || resumed {
		t.Errorf("another name: resumed %v, %v (want a full handshake)", resumed, err)
	}
}
