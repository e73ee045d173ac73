// Package certs owns airlock's local certificate authority and the leaf
// certificates it mints for MITM'd hosts.
package certs

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"
)

// STUB: the certs helper replaces bodies; signatures are the contract.

var errTODO = errors.New("certs: not implemented")

// CA is a loaded certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates an ECDSA P-256 CA valid for 10 years, subject
// "airlock local CA <hostname>".
func NewCA(hostname string, now time.Time) (*CA, error) { return nil, errTODO }

// LoadCA parses a CA certificate and its PKCS#8 private key (PEM).
func LoadCA(certPEM, keyPEM []byte) (*CA, error) { return nil, errTODO }

// KeyPEM returns the CA private key as PKCS#8 PEM (to seal in the vault).
func (ca *CA) KeyPEM() ([]byte, error) { return nil, errTODO }

// Mint creates a leaf certificate for host (DNS name or IP literal).
func (ca *CA) Mint(host string, now time.Time) (*tls.Certificate, error) { return nil, errTODO }

// Cache is a bounded LRU of leaf certificates with single-flight minting.
type Cache struct {
	// OnLookup, when set before use, is called with hit=true on a cache hit
	// and false on a mint.
	OnLookup func(hit bool)
}

// NewCache returns a cache holding at most max leaves.
func NewCache(ca *CA, max int) *Cache { return nil }

// Get returns the leaf for host, minting it once on a miss.
func (c *Cache) Get(host string) (*tls.Certificate, error) { return nil, errTODO }

// TLSConfig returns a server config for a MITM'd connection to host: its
// GetCertificate serves the leaf for the SNI name, or host when no SNI.
func (c *Cache) TLSConfig(host string) *tls.Config { return nil }
