package certs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzLoadCA feeds arbitrary certificate and key PEM to LoadCA. Property:
// no panic; errors never contain the key input's PEM body; a loaded CA
// round-trips through KeyPEM and CertPEM to the same fingerprint.
func FuzzLoadCA(f *testing.F) {
	pairs := [][2]string{
		{"ca.pem", "ca-key.pem"}, {"ca.pem", "ca-key-sec1.pem"}, {"ca.pem", "other-key.pem"},
		{"leaf.pem", "leaf-key.pem"}, {"ca.pem", "rsa-key.pem"}, {"garbage.txt", "garbage.txt"},
	}
	for _, p := range pairs {
		f.Add(readFixture(f, p[0]), readFixture(f, p[1]))
	}
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		ca, err := LoadCA(certPEM, keyPEM)
		if err != nil {
			if block := findBlock(keyPEM, "PRIVATE KEY", "EC PRIVATE KEY"); block != nil && len(block.Bytes) >= 16 {
				if bytes.Contains([]byte(err.Error()), block.Bytes[:16]) {
					t.Fatalf("error echoes key bytes: %v", err)
				}
			}
			return
		}
		keyOut, err := ca.KeyPEM()
		if err != nil {
			t.Fatalf("KeyPEM of a loaded CA: %v", err)
		}
		again, err := LoadCA(ca.CertPEM, keyOut)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		if again.Fingerprint() != ca.Fingerprint() {
			t.Fatal("fingerprint changed on reload")
		}
	})
}

// FuzzNormalizeHost checks NormalizeHost on hostile CONNECT/SNI hosts.
// Property: the result is idempotent, lower case, bracket-free, and one
// Mint accepts (a DNS SAN or IP literal the x509 encoder takes).
func FuzzNormalizeHost(f *testing.F) {
	for _, h := range strings.Split(string(readFixture(f, "hosts.txt")), "\n") {
		f.Add(h)
	}
	ca, err := LoadCA(readFixture(f, "ca.pem"), readFixture(f, "ca-key.pem"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got, err := NormalizeHost(host)
		if err != nil {
			if !errors.Is(err, ErrBadHost) {
				t.Fatalf("error %v is not ErrBadHost", err)
			}
			return
		}
		if again, err := NormalizeHost(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", host, got, again, err)
		}
		if got == "" || got != strings.ToLower(got) || strings.ContainsAny(got, "[]%/ ") {
			t.Fatalf("NormalizeHost(%q) = %q", host, got)
		}
		if _, err := ca.Mint(got, fixtureNow); err != nil {
			t.Fatalf("Mint(%q): %v", got, err)
		}
	})
}
