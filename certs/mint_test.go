package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// verifyLeaf checks leaf chains to ca alone and is valid for name at t.
func verifyLeaf(t *testing.T, ca *CA, leaf *x509.Certificate, name string, at time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err := leaf.Verify(x509.VerifyOptions{
		DNSName:     name,
		Roots:       roots,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatalf("verify leaf for %q: %v", name, err)
	}
}

func TestNormalizeHost(t *testing.T) {
	cases := map[string]struct {
		in, want string
		bad      bool
	}{
		"dns":              {in: "example.com", want: "example.com"},
		"uppercase":        {in: "API.Example.COM", want: "api.example.com"},
		"dns with port":    {in: "example.com:443", want: "example.com"},
		"trailing dot":     {in: "example.com.", want: "example.com"},
		"underscore":       {in: "_dmarc.example.com", want: "_dmarc.example.com"},
		"ipv4":             {in: "127.0.0.1", want: "127.0.0.1"},
		"ipv4 with port":   {in: "127.0.0.1:8443", want: "127.0.0.1"},
		"ipv6":             {in: "::1", want: "::1"},
		"ipv6 long form":   {in: "0:0:0:0:0:0:0:1", want: "::1"},
		"ipv6 uppercase":   {in: "FE80::ABCD", want: "fe80::abcd"},
		"ipv6 brackets":    {in: "[::1]", want: "::1"},
		"ipv6 with port":   {in: "[::1]:443", want: "::1"},
		"ipv6 zone":        {in: "[fe80::1%eth0]:443", want: "fe80::1"},
		"v4-mapped ipv6":   {in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		"empty":            {in: "", bad: true},
		"port only":        {in: ":443", bad: true},
		"space":            {in: "bad host", bad: true},
		"double dot":       {in: "a..b", bad: true},
		"leading dot":      {in: ".example.com", bad: true},
		"leading hyphen":   {in: "-x.example.com", bad: true},
		"label too long":   {in: strings.Repeat("a", 64) + ".com", bad: true},
		"name too long":    {in: strings.Repeat("abcdefghi.", 26) + "com", bad: true},
		"non-ascii":        {in: "bücher.example", bad: true},
		"wildcard":         {in: "*.example.com", bad: true},
		"unclosed bracket": {in: "[::1", bad: true},
		"slash":            {in: "example.com/x", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := NormalizeHost(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadHost) {
					t.Fatalf("NormalizeHost(%q) = %q, %v; want ErrBadHost", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeHost(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMint(t *testing.T) {
	ca := testCA(t)
	now := time.Now()
	cases := map[string]struct {
		host, dns string // dns empty: expect an IP SAN
		ip        string
		cn        string
	}{
		"dns":            {host: "api.example.com", dns: "api.example.com", cn: "api.example.com"},
		"ipv4":           {host: "127.0.0.1", ip: "127.0.0.1", cn: "127.0.0.1"},
		"ipv6":           {host: "::1", ip: "::1", cn: "::1"},
		"ipv6 with port": {host: "[::1]:8443", ip: "::1", cn: "::1"},
		"host:port":      {host: "example.com:443", dns: "example.com", cn: "example.com"},
		"uppercase":      {host: "API.OpenAI.com", dns: "api.openai.com", cn: "api.openai.com"},
		"long name":      {host: strings.Repeat("a", 60) + ".example.com", dns: strings.Repeat("a", 60) + ".example.com", cn: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cert, err := ca.Mint(tc.host, now)
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			if leaf == nil || len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(ca.Cert.Raw) {
				t.Fatal("want Leaf set and chain [leaf, CA]")
			}
			if string(cert.Certificate[0]) != string(leaf.Raw) {
				t.Fatal("Leaf does not match Certificate[0]")
			}
			if key, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || key.Curve != elliptic.P256() || !key.PublicKey.Equal(leaf.PublicKey) {
				t.Fatal("private key is not the leaf's P-256 key")
			}
			if leaf.Subject.CommonName != tc.cn {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, tc.cn)
			}
			if tc.dns != "" && (len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tc.dns || len(leaf.IPAddresses) != 0) {
				t.Errorf("SAN = %v %v, want DNS %s", leaf.DNSNames, leaf.IPAddresses, tc.dns)
			}
			if tc.ip != "" && (len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP(tc.ip)) || len(leaf.DNSNames) != 0) {
				t.Errorf("SAN = %v %v, want IP %s", leaf.DNSNames, leaf.IPAddresses, tc.ip)
			}
			checkLeafFields(t, ca, leaf, now)
			verifyLeaf(t, ca, leaf, tc.dns+tc.ip, now)
		})
	}
}

func checkLeafFields(t *testing.T, ca *CA, leaf *x509.Certificate, now time.Time) {
	t.Helper()
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Error("leaf must have basic constraints CA:FALSE")
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("ExtKeyUsage = %v, want serverAuth", leaf.ExtKeyUsage)
	}
	if string(leaf.AuthorityKeyId) != string(ca.Cert.SubjectKeyId) {
		t.Error("AuthorityKeyId does not match the CA's SubjectKeyId")
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour).Truncate(time.Second)) {
		t.Errorf("NotBefore = %v, want now-1h", leaf.NotBefore)
	}
	if !leaf.NotAfter.Equal(now.Add(7 * 24 * time.Hour).Truncate(time.Second)) {
		t.Errorf("NotAfter = %v, want now+7d", leaf.NotAfter)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v out of range", leaf.SerialNumber)
	}
}

func TestMintUniqueSerials(t *testing.T) {
	ca := testCA(t)
	a, err := ca.Mint("example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Mint("example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Fatal("two leaves share a serial")
	}
}

func TestMintValidityCappedByCA(t *testing.T) {
	ca, err := LoadCA(readFixture(t, "ca.pem"), readFixture(t, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	end := ca.NotAfter()
	cases := map[string]struct {
		now     time.Time
		want    time.Time // leaf NotAfter
		wantErr error
	}{
		"far from CA expiry": {now: fixtureNow, want: fixtureNow.Add(LeafValidity)},
		"one day before":     {now: end.Add(-24 * time.Hour), want: end},
		"at CA expiry":       {now: end, wantErr: ErrCAExpired},
		"after CA expiry":    {now: end.Add(time.Hour), wantErr: ErrCAExpired},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cert, err := ca.Mint("example.com", tc.now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Mint error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Leaf.NotAfter.Equal(tc.want) {
				t.Fatalf("NotAfter = %v, want %v", cert.Leaf.NotAfter, tc.want)
			}
			verifyLeaf(t, ca, cert.Leaf, "example.com", tc.now)
		})
	}
}

func TestMintBadHost(t *testing.T) {
	ca := testCA(t)
	for _, host := range []string{"", "bad host", "a..b", "x/y"} {
		if _, err := ca.Mint(host, time.Now()); !errors.Is(err, ErrBadHost) {
			t.Errorf("Mint(%q) error = %v, want ErrBadHost", host, err)
		}
	}
}
