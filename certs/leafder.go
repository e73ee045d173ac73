package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net/netip"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The object identifiers of a leaf.
var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidP256            = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidCommonName      = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstr     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAuthorityKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidServerAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
)

// leafDER is the DER of the leaf x509.CreateCertificate makes from
// leafTemplate (byte for byte the same TBS: TestLeafDERMatchesX509),
// signed by a P-256 CA. CreateCertificate builds it through
// encoding/asn1's reflection and then verifies the signature it just made
// (a check against faulty crypto.Signers; this one is an in-memory key):
// on a new host's path the two cost more than the signature.
func (ca *CA) leafDER(name string, serial *big.Int, notBefore, notAfter time.Time, pub *ecdsa.PublicKey) ([]byte, error) {
	point, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("leaf key: %w", err)
	}
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) }) // v3
		b.AddASN1BigInt(serial)
		addAlgorithm(b)
		b.AddBytes(ca.Cert.RawSubject) // issuer
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, notBefore)
			addTime(b, notAfter)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // subject
			if len(name) <= maxCN {
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidCommonName)
						tag := cbasn1.UTF8String
						if printable(name) {
							tag = cbasn1.PrintableString
						}
						b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
					})
				})
			}
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // subjectPublicKeyInfo
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidECPublicKey)
				b.AddASN1ObjectIdentifier(oidP256)
			})
			b.AddASN1BitString(point.Bytes())
		})
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { ca.addLeafExtensions(b, name) })
		})
	})
	tbsDER, err := tbs.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode leaf: %w", err)
	}
	digest := sha256.Sum256(tbsDER)
	sig, err := ecdsa.SignASN1(rand.Reader, ca.Key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sign leaf: %w", err)
	}
	var cert cryptobyte.Builder
	cert.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		addAlgorithm(b)
		b.AddASN1BitString(sig)
	})
	return cert.Bytes()
}

// addLeafExtensions adds leafTemplate's extensions in CreateCertificate's
// order: key usage (critical), extended key usage, basic constraints
// (critical), authority key id, and the name (critical when the subject
// is empty).
func (ca *CA) addLeafExtensions(b *cryptobyte.Builder, name string) {
	addExtension(b, oidKeyUsage, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{7, 0x80}) }) // digitalSignature
	})
	addExtension(b, oidExtKeyUsage, false, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidServerAuth) })
	})
	addExtension(b, oidBasicConstr, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) // not a CA
	})
	if len(ca.Cert.SubjectKeyId) > 0 {
		addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ca.Cert.SubjectKeyId) })
			})
		})
	}
	addExtension(b, oidSubjectAltName, len(name) > maxCN, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if ip, err := netip.ParseAddr(name); err == nil {
				b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip.AsSlice()) })
				return
			}
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
		})
	})
}

func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
			var inner cryptobyte.Builder
			value(&inner)
			der, err := inner.Bytes()
			if err != nil {
				b.SetError(err)
				return
			}
			b.AddBytes(der)
		})
	})
}

func addAlgorithm(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidECDSAWithSHA256) })
}

// addTime adds t as encoding/asn1 marshals a time.Time: UTCTime for the
// years 1950 to 2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5).
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
		return
	}
	b.AddASN1GeneralizedTime(t)
}

// printable reports whether encoding/asn1 would marshal s as a
// PrintableString (it uses UTF8String otherwise): host names hold
// letters, digits, '-', '.', '_' (not printable) and ':' (IPv6).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == ' ', c == '\'', c == '(', c == ')', c == '+', c == ',', c == '-', c == '.', c == '/', c == ':', c == '=', c == '?':
		default:
			return false
		}
	}
	return true
}

// fastMint reports whether leafDER can sign for ca: a P-256 key (what
// NewCA makes); other CAs take x509.CreateCertificate.
func (ca *CA) fastMint() bool { return ca.Key.Curve == elliptic.P256() }
