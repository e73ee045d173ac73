// Package certs owns airlock's local certificate authority and the leaf
// certificates it mints for MITM'd hosts.
//
// # Authority
//
// [NewCA] creates an ECDSA P-256 CA valid for ten years; [CA.KeyPEM] gives
// its PKCS#8 key for sealing in the vault and [LoadCA] brings both back,
// checking that the key belongs to the certificate.
//
// # Leaves
//
// [CA.Mint] issues a short-lived (7 day) ECDSA P-256 leaf for one DNS name
// or IP literal. [Cache] keeps a bounded LRU of leaves, mints each host at
// most once at a time, and hands the MITM front end a [tls.Config] through
// [Cache.TLSConfig].
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Validity periods and the backdating that absorbs small clock skew.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 7 * 24 * time.Hour
	Backdate     = time.Hour
)

// Errors callers may branch on.
var (
	// ErrBadPEM: the input holds no PEM block of the expected type.
	ErrBadPEM = errors.New("no PEM block of the expected type")
	// ErrNotCA: the certificate cannot sign other certificates.
	ErrNotCA = errors.New("certificate is not a CA")
	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("private key does not match the CA certificate")
	// ErrUnsupportedKey: the key is not an unencrypted ECDSA key.
	ErrUnsupportedKey = errors.New("unsupported CA key (want an unencrypted ECDSA PKCS#8 key)")
	// ErrCAExpired: the CA is outside its validity period at minting time.
	ErrCAExpired = errors.New("CA certificate is expired")
)

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates an ECDSA P-256 CA valid for 10 years, subject
// "airlock local CA <hostname>".
func NewCA(hostname string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   "airlock local CA " + hostname,
			Organization: []string{"airlock"},
		},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, nil
}

// LoadCA parses a CA certificate and its PKCS#8 private key (PEM). It
// returns [ErrBadPEM], [ErrNotCA], [ErrUnsupportedKey] or [ErrKeyMismatch]
// (wrapped) on bad input; errors never contain key material.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCACert(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, ErrKeyMismatch)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(cert.Raw)}, nil
}

// KeyPEM returns the CA private key as PKCS#8 PEM (to seal in the vault).
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Fingerprint returns the lowercase hex SHA-256 of the CA certificate DER.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:])
}

// NotAfter returns the end of the CA certificate's validity.
func (ca *CA) NotAfter() time.Time { return ca.Cert.NotAfter }

// String describes the CA by subject and fingerprint, never its key.
func (ca *CA) String() string {
	if ca == nil || ca.Cert == nil {
		return "certs.CA(nil)"
	}
	return fmt.Sprintf("certs.CA(%q sha256:%s)", ca.Cert.Subject.CommonName, ca.Fingerprint())
}

// GoString is [CA.String], so %#v cannot print the key either.
func (ca *CA) GoString() string { return ca.String() }

func parseCACert(certPEM []byte) (*x509.Certificate, error) {
	block := findBlock(certPEM, "CERTIFICATE")
	if block == nil {
		return nil, fmt.Errorf("parse CA certificate: %w", ErrBadPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, ErrNotCA)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load CA %q: no certSign key usage: %w", cert.Subject.CommonName, ErrNotCA)
	}
	return cert, nil
}

// parseKey decodes an ECDSA key from PKCS#8 (or SEC 1) PEM. The x509
// parse errors are not wrapped so no byte of the key can leak into them.
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block := findBlock(keyPEM, "PRIVATE KEY", "EC PRIVATE KEY")
	if block == nil {
		return nil, fmt.Errorf("parse CA key: %w", ErrBadPEM)
	}
	var (
		parsed any
		err    error
	)
	if block.Type == "EC PRIVATE KEY" {
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	} else {
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse CA key: malformed %s block: %w", block.Type, ErrUnsupportedKey)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse CA key: %T: %w", parsed, ErrUnsupportedKey)
	}
	return key, nil
}

// findBlock returns the first PEM block whose type is one of types.
func findBlock(data []byte, types ...string) *pem.Block {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return nil
		}
		for _, t := range types {
			if block.Type == t {
				return block
			}
		}
		data = rest
	}
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// serialLimit is 2^128: serials are uniform in [1, 2^128).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// keyID is the RFC 7093 method 1 key identifier: the leftmost 160 bits of
// the SHA-256 of the subjectPublicKey bits.
func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	ecdh, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("key identifier: %w", err)
	}
	sum := sha256.Sum256(ecdh.Bytes())
	return sum[:20], nil
}
