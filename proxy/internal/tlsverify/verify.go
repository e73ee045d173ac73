// Package tlsverify verifies an upstream's certificate chain once for
// every connection that presents it.
//
// crypto/tls verifies the whole chain on every full handshake: two or
// three signatures and a chain search through the roots. Connections
// that cannot resume a session pay it each time: a burst of requests to
// one API opens many connections before any session ticket arrives, and
// hosts behind one certificate (a wildcard, a CDN) share a chain. A
// [Cache] remembers, for a bounded time, which chains it verified against
// which roots.
//
// What it does not cache: the server name, checked against the leaf on
// every handshake (as x509's Verify does first), and the handshake's own
// signature. crypto/tls
// checks with the leaf's public key that the server holds its private
// key (CertificateVerify in TLS 1.3, the key exchange's signature in
// TLS 1.2) whether or not it verifies the chain, so a server replaying a
// certificate it does not own still fails.
package tlsverify

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// TTL bounds how long a verification counts; a chain is verified again
// once it passes, or once any certificate of it expires, whichever comes
// first.
const TTL = 10 * time.Minute

// maxEntries bounds a Cache; it is cleared when full.
const maxEntries = 1024

// Cache is a set of verified (chain, root pool) pairs. Its zero value is
// ready; safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	m        map[[32]byte]window
	verifies atomic.Int64 // chains verified, not taken from the cache (tests)
}

// window is when a verification against roots holds: [from, until).
type window struct {
	roots       *x509.CertPool
	from, until time.Time
}

// Apply makes cfg, a client config for one server (ServerName set),
// verify the server's chain through c against cfg.RootCAs, at cfg.Time
// (or now), as crypto/tls would: the server name, the roots, the
// intermediates the server sent, server-auth key usage. It sets
// InsecureSkipVerify, which only hands the chain to VerifyConnection (the
// handshake's signature is still checked), and wraps any VerifyConnection
// already set. A cfg without ServerName, or that skips verification
// already, is left alone.
func (c *Cache) Apply(cfg *tls.Config) {
	if cfg.InsecureSkipVerify || cfg.ServerName == "" {
		return
	}
	name, roots, clock, next := cfg.ServerName, cfg.RootCAs, cfg.Time, cfg.VerifyConnection
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		now := time.Now()
		if clock != nil {
			now = clock()
		}
		if err := c.Verify(name, roots, cs.PeerCertificates, now); err != nil {
			return err
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
}

// ErrNoCertificate: the server sent none.
var ErrNoCertificate = errors.New("tlsverify: the server sent no certificate")

// Verify checks that certs (leaf first, then what the server sent to
// chain it) verify for name against roots at now: the leaf names name,
// and the chain verifies (from the cache when it verified it before). Its
// error is a *tls.CertificateVerificationError, as crypto/tls's own.
func (c *Cache) Verify(name string, roots *x509.CertPool, certs []*x509.Certificate, now time.Time) error {
	if len(certs) == 0 {
		return ErrNoCertificate
	}
	if err := certs[0].VerifyHostname(name); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	key := digest(certs)
	c.mu.Lock()
	w, ok := c.m[key]
	c.mu.Unlock()
	if ok && w.roots == roots && !now.Before(w.from) && now.Before(w.until) {
		return nil
	}
	c.verifies.Add(1)
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, Intermediates: x509.NewCertPool()}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: certs, Err: err}
	}
	w = holds(chains, now)
	w.roots = roots
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxEntries {
		c.m = make(map[[32]byte]window)
	}
	c.m[key] = w
	c.mu.Unlock()
	return nil
}

// holds is how long the verification at now holds: while any of the
// verified chains is still valid, at most TTL.
func holds(chains [][]*x509.Certificate, now time.Time) window {
	w := window{from: now, until: now}
	for _, chain := range chains {
		from, until := time.Time{}, now.Add(TTL)
		for _, cert := range chain {
			if cert.NotBefore.After(from) {
				from = cert.NotBefore
			}
			if cert.NotAfter.Before(until) {
				until = cert.NotAfter
			}
		}
		if until.After(w.until) {
			w = window{from: from, until: until}
		}
	}
	return w
}

// digest names a chain.
func digest(certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, cert := range certs {
		binary.BigEndian.PutUint64(n[:], uint64(len(cert.Raw)))
		h.Write(n[:])
		h.Write(cert.Raw)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
