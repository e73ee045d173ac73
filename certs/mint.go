package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// ErrBadHost: the host is empty or not a plausible DNS name or IP literal.
var ErrBadHost = errors.New("invalid host name")

// maxCN is the X.520 upper bound on a common name; longer hosts go in the
// SAN only.
const maxCN = 64

// Mint creates a leaf certificate for host (DNS name or IP literal, with
// optional brackets and ":port"). The leaf is valid from now-1h to
// now+7 days, capped at the CA's NotAfter; the chain is [leaf, CA].
func (ca *CA) Mint(host string, now time.Time) (*tls.Certificate, error) {
	name, err := NormalizeHost(host)
	if err != nil {
		return nil, err
	}
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("mint %s: %w (not after %s)", name, ErrCAExpired, ca.Cert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mint %s: generate key: %w", name, err)
	}
	tmpl, err := ca.leafTemplate(name, now)
	if err != nil {
		return nil, fmt.Errorf("mint %s: %w", name, err)
	}
	var der []byte
	if ca.fastMint() {
		der, err = ca.leafDER(name, tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter, &key.PublicKey) // leafder.go
	} else {
		der, err = x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	}
	if err != nil {
		return nil, fmt.Errorf("mint %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mint %s: parse leaf: %w", name, err)
	}
	return &tls.Certificate{
		Certificate: [][]byte{der, ca.Cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

func (ca *CA) leafTemplate(name string, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-Backdate)
	if notBefore.Before(ca.Cert.NotBefore) {
		notBefore = ca.Cert.NotBefore
	}
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	if len(name) <= maxCN {
		tmpl.Subject = pkix.Name{CommonName: name}
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	} else {
		tmpl.DNSNames = []string{name}
	}
	return tmpl, nil
}

// NormalizeHost returns the cache key and certificate name for host: lower
// case, without brackets, ":port", IPv6 zone or trailing dot. IP literals
// come back in canonical form ("0:0::1" becomes "::1"). It returns
// [ErrBadHost] (wrapped) for anything that is neither an IP literal nor a
// DNS name made of letters, digits, '-', '_' and '.'.
func NormalizeHost(host string) (string, error) {
	h := stripPort(host)
	if mayBeIP(h) {
		if ip, err := netip.ParseAddr(h); err == nil {
			return ip.WithZone("").Unmap().String(), nil
		}
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !validDNSName(h) {
		return "", fmt.Errorf("host %q: %w", truncate(host), ErrBadHost)
	}
	return h, nil
}

// stripPort removes "[...]" brackets and a trailing ":port". A bare IPv6
// literal (two or more colons, no brackets) is left as it is.
func stripPort(host string) string {
	if strings.HasPrefix(host, "[") {
		if end := strings.IndexByte(host, ']'); end > 0 {
			return host[1:end]
		}
		return host
	}
	if strings.Count(host, ":") == 1 {
		return host[:strings.IndexByte(host, ':')]
	}
	return host
}

func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

func validLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// mayBeIP reports whether h could be an IP literal, to skip the parse
// (and its error allocation) for ordinary DNS names.
func mayBeIP(h string) bool {
	return strings.IndexByte(h, ':') >= 0 || h != "" && h[len(h)-1] >= '0' && h[len(h)-1] <= '9'
}

// truncate bounds hostile input echoed in errors.
func truncate(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
