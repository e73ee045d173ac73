package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtureNow is inside the validity of testdata/ca.pem.
var fixtureNow = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

var (
	sharedCAOnce sync.Once
	sharedCA     *CA
	sharedCAErr  error
)

// testCA returns a CA created once per test binary, valid around time.Now.
func testCA(tb testing.TB) *CA {
	tb.Helper()
	sharedCAOnce.Do(func() { sharedCA, sharedCAErr = NewCA("test", time.Now()) })
	if sharedCAErr != nil {
		tb.Fatalf("NewCA: %v", sharedCAErr)
	}
	return sharedCA
}

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestNewCA(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ca, err := NewCA("box1", now)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	checks := map[string]bool{
		"common name":     c.Subject.CommonName == "airlock local CA box1",
		"organization":    len(c.Subject.Organization) == 1 && c.Subject.Organization[0] == "airlock",
		"is CA":           c.IsCA && c.BasicConstraintsValid,
		"path len zero":   c.MaxPathLen == 0 && c.MaxPathLenZero,
		"key usage":       c.KeyUsage == x509.KeyUsageCertSign|x509.KeyUsageCRLSign,
		"backdated 1h":    c.NotBefore.Equal(now.Add(-time.Hour)),
		"10 years":        c.NotAfter.Equal(now.Add(10 * 365 * 24 * time.Hour)),
		"NotAfter()":      ca.NotAfter().Equal(c.NotAfter),
		"P-256":           c.PublicKeyAlgorithm == x509.ECDSA && ca.Key.Curve.Params().Name == "P-256",
		"ECDSA-SHA256":    c.SignatureAlgorithm == x509.ECDSAWithSHA256,
		"subject key id":  len(c.SubjectKeyId) == 20,
		"serial positive": c.SerialNumber.Sign() > 0 && c.SerialNumber.BitLen() <= 128,
		"self-signed":     c.CheckSignatureFrom(c) == nil,
		"CertPEM":         bytes.HasPrefix(ca.CertPEM, []byte("-----BEGIN CERTIFICATE-----")),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: check failed", name)
		}
	}
	other, err := NewCA("box1", now)
	if err != nil {
		t.Fatal(err)
	}
	if other.Cert.SerialNumber.Cmp(c.SerialNumber) == 0 || other.Fingerprint() == ca.Fingerprint() {
		t.Error("two CAs share a serial or fingerprint")
	}
}

func TestLoadCARoundTrip(t *testing.T) {
	ca := testCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("KeyPEM is not PKCS#8 PEM: %.30q", keyPEM)
	}
	got, err := LoadCA(ca.CertPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != ca.Fingerprint() || !got.Key.Equal(ca.Key) || !bytes.Equal(got.CertPEM, ca.CertPEM) {
		t.Fatal("loaded CA differs from the original")
	}
	leaf, err := got.Mint("example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, ca, leaf.Leaf, "example.com", time.Now())
}

func TestLoadCA(t *testing.T) {
	cases := map[string]struct {
		cert, key string
		want      error // nil: success
	}{
		"pkcs8":              {"ca.pem", "ca-key.pem", nil},
		"sec1":               {"ca.pem", "ca-key-sec1.pem", nil},
		"mismatched key":     {"ca.pem", "other-key.pem", ErrKeyMismatch},
		"leaf is not a CA":   {"leaf.pem", "leaf-key.pem", ErrNotCA},
		"rsa key":            {"ca.pem", "rsa-key.pem", ErrUnsupportedKey},
		"cert is not PEM":    {"garbage.txt", "ca-key.pem", ErrBadPEM},
		"key is not PEM":     {"ca.pem", "garbage.txt", ErrBadPEM},
		"key given as cert":  {"ca-key.pem", "ca-key.pem", ErrBadPEM},
		"cert given as key":  {"ca.pem", "ca.pem", ErrBadPEM},
		"leaf key for CA":    {"ca.pem", "leaf-key.pem", ErrKeyMismatch},
		"other key for leaf": {"leaf.pem", "other-key.pem", ErrNotCA},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			key := readFixture(t, tc.key)
			ca, err := LoadCA(readFixture(t, tc.cert), key)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("LoadCA: %v", err)
				}
				if _, err := ca.Mint("example.com", fixtureNow); err != nil {
					t.Fatalf("Mint with loaded CA: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("LoadCA error = %v, want %v", err, tc.want)
			}
			assertNoKeyMaterial(t, err.Error(), key)
		})
	}
}

func TestLoadCACorruptKey(t *testing.T) {
	key := readFixture(t, "ca-key.pem")
	// Flip a byte inside the base64 body (keeps it valid base64).
	body := bytes.Index(key, []byte("\n")) + 10
	bad := bytes.Clone(key)
	if bad[body] == 'A' {
		bad[body] = 'B'
	} else {
		bad[body] = 'A'
	}
	_, err := LoadCA(readFixture(t, "ca.pem"), bad)
	if err == nil {
		t.Fatal("corrupt key accepted")
	}
	assertNoKeyMaterial(t, err.Error(), bad)
}

// assertNoKeyMaterial fails if msg contains any 8-character run of the
// key's PEM body or the hex of its DER.
func assertNoKeyMaterial(t *testing.T, msg string, keyPEM []byte) {
	t.Helper()
	lines := strings.Split(string(keyPEM), "\n")
	for _, line := range lines {
		if strings.HasPrefix(line, "-----") || len(line) < 8 {
			continue
		}
		for i := 0; i+8 <= len(line); i += 4 {
			if strings.Contains(msg, line[i:i+8]) {
				t.Fatalf("error %q contains key material", msg)
			}
		}
	}
	if block := findBlock(keyPEM, "PRIVATE KEY", "EC PRIVATE KEY"); block != nil {
		h := hex.EncodeToString(block.Bytes)
		for i := 0; i+16 <= len(h); i += 8 {
			if strings.Contains(strings.ToLower(msg), h[i:i+16]) {
				t.Fatalf("error %q contains key material (hex)", msg)
			}
		}
	}
}

func TestCAFormattingHidesKey(t *testing.T) {
	ca := testCA(t)
	d := hex.EncodeToString(ca.Key.D.Bytes())
	dec := ca.Key.D.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, ca)
		if strings.Contains(out, d) || strings.Contains(out, dec) {
			t.Errorf("%s prints the private key", verb)
		}
		if !strings.Contains(out, ca.Fingerprint()) {
			t.Errorf("%s = %q, want the fingerprint", verb, out)
		}
	}
}

func TestFingerprint(t *testing.T) {
	ca, err := LoadCA(readFixture(t, "ca.pem"), readFixture(t, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// openssl x509 -in testdata/ca.pem -noout -fingerprint -sha256
	const want = "7ec69ef0b5aef7443ef068fbb4c89715aa0f8d379a2d9d2a17ac9b0ed0b643de"
	fp := ca.Fingerprint()
	if fp != want {
		t.Fatalf("Fingerprint = %q, want %q", fp, want)
	}
	if other := testCA(t).Fingerprint(); other == fp {
		t.Fatal("different CAs share a fingerprint")
	}
}
