package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// TestLeafDERMatchesX509: for every kind of name (DNS, with '_', IPv4,
// IPv6, longer than a common name allows) and dates on both sides of
// 2050, leafDER's TBS is byte for byte what x509.CreateCertificate makes
// from leafTemplate, and the leaf verifies under the CA.
func TestLeafDERMatchesX509(t *testing.T) {
	ca, err := NewCA("test-host", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 60) + ".example.com"
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"api.openai.com", time.Now()},
		{"my_host.internal", time.Now()},
		{"127.0.0.1", time.Now()},
		{"2001:db8::1", time.Now()},
		{long, time.Now()},
		{"late.example.com", time.Date(2049, 12, 30, 0, 0, 0, 0, time.UTC)}, // valid past 2050: GeneralizedTime
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *ca
			c.Cert = &x509.Certificate{}
			*c.Cert = *ca.Cert
			c.Cert.NotAfter = tc.now.Add(30 * 24 * time.Hour)
			c.Cert.NotBefore = tc.now.Add(-48 * time.Hour)
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := c.leafTemplate(tc.name, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			want, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, &key.PublicKey, c.Key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.leafDER(tc.name, tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter, &key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			wc, _ := x509.ParseCertificate(want)
			gc, err := x509.ParseCertificate(got)
			if err != nil {
				t.Fatalf("leafDER does not parse: %v", err)
			}
			if !bytes.Equal(gc.RawTBSCertificate, wc.RawTBSCertificate) {
				t.Fatalf("TBS differs from x509.CreateCertificate's:\n got %s\nwant %s", hex.EncodeToString(gc.RawTBSCertificate), hex.EncodeToString(wc.RawTBSCertificate))
			}
			if err := gc.CheckSignatureFrom(ca.Cert); err != nil {
				t.Fatalf("leaf signature: %v", err)
			}
		})
	}
}

func BenchmarkLeafSign(b *testing.B) {
	ca, err := NewCA("test-host", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl, _ := ca.leafTemplate("api.openai.com", time.Now())
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			_, _ = x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
		}
	})
	b.Run("leafDER", func(b *testing.B) {
		for b.Loop() {
			_, _ = ca.leafDER("api.openai.com", tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter, &key.PublicKey)
		}
	})
}

// FuzzLeafDERMatchesX509: whatever host an agent names in its CONNECT,
// once NormalizeHost accepts it, leafDER encodes the leaf as
// x509.CreateCertificate does.
func FuzzLeafDERMatchesX509(f *testing.F) {
	ca, err := NewCA("test-host", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"api.openai.com:443", "[::1]:8443", "10.0.0.1", "a_b.example", "X.EXAMPLE.", strings.Repeat("b", 63) + ".io"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, host string) {
		name, err := NormalizeHost(host)
		if err != nil {
			return
		}
		tmpl, err := ca.leafTemplate(name, now)
		if err != nil {
			t.Fatal(err)
		}
		want, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
		if err != nil {
			t.Fatalf("%q: x509.CreateCertificate: %v", name, err)
		}
		got, err := ca.leafDER(name, tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter, &key.PublicKey)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		wc, _ := x509.ParseCertificate(want)
		gc, err := x509.ParseCertificate(got)
		if err != nil || !bytes.Equal(gc.RawTBSCertificate, wc.RawTBSCertificate) {
			t.Fatalf("%q: leafDER differs from x509.CreateCertificate (parse error %v)", name, err)
		}
	})
}
