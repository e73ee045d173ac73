package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/internal/isolate"
)

// recordingCredential issues numbered tokens and records revocations.
type recordingCredential struct {
	mu      sync.Mutex // guards issued, revoked
	issued  []isolate.Credential
	revoked []isolate.Credential
}

func (r *recordingCredential) Issue(_ context.Context, agent string, ttl time.Duration) (isolate.Credential, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := isolate.Credential{Agent: agent, Token: fmt.Sprintf("run-token-%d", len(r.issued)+1), ExpiresAt: time.Now().Add(ttl)}
	r.issued = append(r.issued, c)
	return c, nil
}

func (r *recordingCredential) Revoke(_ context.Context, c isolate.Credential) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked = append(r.revoked, c)
	return nil
}

// TestRunIsolatedThroughProxy: `run --isolate` with curl, once honouring
// the proxy variables (explicit CONNECT to airlock's end of the veth) and
// once ignoring them (--noproxy '*': intercepted by the transparent door
// and forwarded as a CONNECT). Both reach the stand-in proxy with the run's
// credential, trust the CA written back into the hidden home, and the
// credential is revoked after CMD exits.
func TestRunIsolatedThroughProxy(t *testing.T) {
	if err := isolate.Supported(); err != nil {
		t.Skipf("root isolation unavailable: %v", err)
	}
	h := home{dir: t.TempDir()}
	caPEM, leaf := isoTestCA(t)
	os.MkdirAll(h.KeysDir(), 0o700)
	seed := make([]byte, 32)
	os.WriteFile(h.KeyPath("bot"), []byte(hex.EncodeToString(seed)), 0o600)
	os.WriteFile(h.CAPath(), caPEM, 0o644)
	os.WriteFile(h.BundlePath(), caPEM, 0o644)
	auths := make(chan string, 4)
	addr := stubConnectProxy(t, leaf, auths)
	t.Setenv("AIRLOCK_LISTEN", addr)
	t.Setenv("AIRLOCK_PASSPHRASE", "must-not-enter")
	rec := &recordingCredential{}
	old := runCredential
	runCredential = rec
	t.Cleanup(func() { runCredential = old })

	for name, argv := range map[string][]string{
		"explicit":    {"sh", "-c", `curl -sS --max-time 10 https://api.example.test/e; echo; echo "pass=${AIRLOCK_PASSPHRASE:-unset}"; ls ` + h.Dir()},
		"transparent": {"curl", "-sS", "--max-time", "10", "--noproxy", "*", "https://api.example.test/t"},
	} {
		t.Run(name, func(t *testing.T) {
			outR, outW, _ := os.Pipe()
			oldOut := Stdout
			Stdout = outW
			var out []byte
			done := make(chan struct{})
			go func() { out, _ = io.ReadAll(outR); close(done) }()
			err := runIsolated(&globals{home: h}, "bot", time.Minute, argv)
			Stdout = oldOut
			outW.Close()
			<-done
			if err != nil {
				t.Fatalf("runIsolated: %v (stdout %q)", err, out)
			}
			if !strings.Contains(string(out), "proxied api.example.test:443") {
				t.Fatalf("stdout %q", out)
			}
			if strings.Contains(string(out), "must-not-enter") || strings.Contains(string(out), "keys") {
				t.Fatalf("secret or home leaked into the child: %q", out)
			}
			rec.mu.Lock()
			issued, revoked := rec.issued[len(rec.issued)-1], rec.revoked
			rec.mu.Unlock()
			if got := <-auths; got != "bot:"+issued.Token {
				t.Fatalf("proxy saw credential %q, want the run's %q", got, issued.Token)
			}
			if len(revoked) == 0 || revoked[len(revoked)-1] != issued {
				t.Fatalf("run credential %v not revoked after exit (revoked %v)", issued, revoked)
			}
		})
	}
}

// stubConnectProxy stands in for `airlock serve`: it answers CONNECT,
// records Proxy-Authorization, and MITMs the tunnel with leaf.
func stubConnectProxy(t *testing.T, leaf *tls.Certificate, auths chan<- string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(req.Header.Get("Proxy-Authorization"), "Basic "))
				auths <- string(raw)
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
				tc := tls.Server(&bufferedConn{Conn: c, r: br}, &tls.Config{Certificates: []tls.Certificate{*leaf}})
				inner, err := http.ReadRequest(bufio.NewReader(tc))
				if err != nil {
					return
				}
				body := "proxied " + req.Host + " " + inner.URL.Path
				fmt.Fprintf(tc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			}()
		}
	}()
	return ln.Addr().String()
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// isoTestCA returns a CA (PEM) and a leaf for api.example.test it signed.
func isoTestCA(t *testing.T) ([]byte, *tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "isolate cli test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{"api.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, lt, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestIsolationSupport: the doctor line names both modes; as root with the
// tools installed it is ok.
func TestIsolationSupport(t *testing.T) {
	status, detail, fix := isolationSupport()
	if !strings.Contains(detail, "root mode") || !strings.Contains(detail, "unprivileged mode") {
		t.Fatalf("detail %q", detail)
	}
	if isolate.Supported() == nil && status != statusOK {
		t.Fatalf("status %q (%s, %s) on a machine that runs root mode", status, detail, fix)
	}
	if status != statusOK && fix == "" {
		t.Fatalf("status %q without a fix", status)
	}
}

// TestIsolateHints: every reason isolation cannot run gets a next step,
// and the one for a system without namespaces (macOS) points at the
// proxy variables, which work there.
func TestIsolateHints(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w; this is darwin", isolate.ErrUnsupportedOS), "airlock run --agent NAME -- CMD"},
		{isolate.ErrNotRoot, "sudo airlock run --isolate"},
		{isolate.ErrMissingTool, "apt install nftables"},
		{isolate.ErrNoUserNS, "kernel.unprivileged_userns_clone=1"},
		{io.EOF, "airlock doctor"},
	} {
		err := isolateHint(tc.err)
		if !strings.Contains(hintOf(err), tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("isolateHint(%v) = %v, hint %q; want the error kept and a hint naming %q", tc.err, err, hintOf(err), tc.want)
		}
	}
}
