package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/proxy/testkit"
)

// upstreamHost is where test APIs listen: loopback, but not in the
// NO_PROXY list `airlock env` exports (localhost,127.0.0.1,::1), so real
// agents send their requests through airlock.
const upstreamHost = "127.0.0.2"

// testAPI is a TLS API on upstreamHost answering with the SHA-256 of the
// Authorization header it received, so no test needs the secret echoed.
type testAPI struct {
	url    string
	caFile string // its CA, for SSL_CERT_FILE of `airlock serve`
}

func digestHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	ca, err := certs.NewCA("test API", time.Now())
	must(t, err)
	leaf, err := ca.Mint(upstreamHost, time.Now())
	must(t, err)
	l, err := net.Listen("tcp", upstreamHost+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback alias): %v", upstreamHost, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"authorization_sha256": digestHex(r.Header.Get("Authorization")), "path": r.URL.Path})
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "api-ca.pem")
	writeFile(t, caFile, string(ca.CertPEM))
	return &testAPI{url: srv.URL, caFile: caFile}
}

// apiPolicy lets every agent reach api with credential cred injected as a
// bearer token.
func apiPolicy(api *testAPI, cred string) string {
	host := api.url[len("https://"):]
	return "version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: test-api\n    host: \"" +
		host + "\"\n    credential: " + cred + "\n"
}

// serving is a running `airlock serve`.
type serving struct {
	pid  int
	addr string
	logs *lockedBuffer
}

// listenRE finds the proxy address in the "listening" line, JSON or
// console format.
var listenRE = regexp.MustCompile(`"?proxy"?[=:]"?([0-9.:\[\]]+)`)

// serve starts `airlock serve` on a loopback port, trusting api's CA, and
// points later `airlock run` calls of e at it.
func (e *tenv) serve(t *testing.T, api *testAPI, extra ...string) *serving {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"}, extra...)
	cmd := exec.Command(airlockBin, args...)
	cmd.Env = append(e.environ(), "SSL_CERT_FILE="+api.caFile)
	s := &serving{logs: &lockedBuffer{}}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(s.logs, pw)
	must(t, cmd.Start())
	s.pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRE.FindSubmatch(sc.Bytes()); m != nil && bytes.Contains(sc.Bytes(), []byte("listening")) {
				ready <- string(m[1])
			}
		}
	}()
	select {
	case s.addr = <-ready:
	case err := <-done:
		t.Fatalf("airlock serve exited: %v\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("airlock serve did not start\n%s", s.logs.String())
	}
	e.env["AIRLOCK_LISTEN"] = s.addr
	return s
}

// lockedBuffer is a goroutine-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitUntil is the module's one poll-to-a-deadline helper.
var waitUntil = testkit.WaitUntil
