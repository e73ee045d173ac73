package proxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/testkit"
)

// The end-to-end tests run the real airlock binary (built once here, with
// -race when the tests have it) as a subprocess against real TLS upstreams
// on loopback.

var airlockBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m, &airlockBin, "../cmd/airlock", ""))
}

const testPassphrase = "correct horse battery staple"

// env is one airlock home with a running or runnable `airlock serve`.
type env struct {
	t        *testing.T
	home     string
	extraEnv []string
	upCAFile string // upstream CA for SSL_CERT_FILE of serve
	downPort string // a closed loopback port

	proxyAddr string
	adminAddr string
	logs      *syncBuffer
	cmd       *exec.Cmd
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, home: filepath.Join(t.TempDir(), "home")}
	e.mustRun("", "init")
	return e
}

func (e *env) environ() []string {
	env := append(os.Environ(),
		"AIRLOCK_HOME="+e.home,
		"AIRLOCK_PASSPHRASE="+testPassphrase,
		"AIRLOCK_INSECURE_FAST_KDF=1",
		"HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy=",
		"GORACE=atexit_sleep_ms=0", // a -race binary otherwise sleeps 1 s at every exit
	)
	if e.upCAFile != "" {
		env = append(env, "SSL_CERT_FILE="+e.upCAFile)
	}
	return append(env, e.extraEnv...)
}

// run runs the airlock CLI with stdin and returns stdout, stderr, exit code.
func (e *env) run(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(airlockBin, args...)
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("airlock %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (e *env) mustRun(stdin string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("airlock %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// setSecret stores a credential through the CLI.
func (e *env) setSecret(path, value string, extra ...string) {
	e.mustRun(value+"\n", append([]string{"vault", "set", path}, extra...)...)
}

// addAgent registers an agent and returns its proxy URL.
func (e *env) addAgent(name string) *url.URL {
	out := strings.TrimSpace(e.mustRun("", "agent", "add", name))
	u, err := url.Parse(out)
	if err != nil || u.User == nil {
		e.t.Fatalf("agent add printed %q", out)
	}
	return u
}

func (e *env) writePolicy(yaml string) {
	if err := os.WriteFile(filepath.Join(e.home, "policy.yaml"), []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// serve starts `airlock serve` on loopback ports and waits for the
// "listening" line.
func (e *env) serve(extra ...string) {
	e.t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(airlockBin, args...)
	cmd.Env = e.environ()
	e.logs = &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(e.logs, pw)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = cmd
	exited := make(chan struct{})
	// Last word on this serve: stopped and gone before the test's TempDir
	// (its home) is removed, or a shutdown write (usage.json, approvals)
	// races the removal ("directory not empty").
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "listening" {
				ready <- m
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close(); close(exited) }() // done is buffered: never blocks
	select {
	case m := <-ready:
		e.proxyAddr, _ = m["proxy"].(string)
		e.adminAddr, _ = m["admin"].(string)
	case err := <-done:
		e.t.Fatalf("airlock serve exited: %v\n%s", err, e.logs.String())
	case <-time.After(30 * time.Second):
		e.t.Fatalf("airlock serve did not start\n%s", e.logs.String())
	}
	e.cmd.Cancel = nil
}

func (e *env) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(os.Interrupt)
		e.cmd = nil
	}
}

// proxyURL is the agent's HTTPS_PROXY value for the running serve.
func (e *env) proxyURL(agent *url.URL) *url.URL {
	u := *agent
	u.Host = e.proxyAddr
	return &u
}

func (e *env) caFile() string { return filepath.Join(e.home, "ca.pem") }

// client is a Go agent using the proxy and trusting airlock's CA.
func (e *env) client(agent *url.URL) *http.Client {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(e.caFile())
	if err != nil {
		e.t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		Proxy:           http.ProxyURL(e.proxyURL(agent)),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upstream is a real TLS API on 127.0.0.1. It proves what it received by
// answering with SHA-256 digests, so no test needs the secret echoed.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

type seenReq struct {
	Path        string `json:"path"`
	Method      string `json:"method"`
	Host        string `json:"host"`
	Auth        string `json:"authorization_sha256"`
	APIKey      string `json:"x_api_key_sha256"`
	Custom      string `json:"x_custom_sha256"`
	Query       string `json:"query"`
	KeyParam    string `json:"key_param_sha256"`
	AuthCount   int    `json:"authorization_count"`
	ProxyAuth   string `json:"proxy_authorization"`
	ExtraHeader string `json:"anthropic_version"`
}

func digest(s string) string {
	if s == "" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newUpstream(t *testing.T, extra http.Handler) *upstream {
	u := &upstream{}
	mux := http.NewServeMux()
	if extra != nil {
		mux.Handle("/x/", extra)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		resp := seenReq{
			Path: r.URL.Path, Method: r.Method, Host: r.Host,
			Auth: digest(r.Header.Get("Authorization")), APIKey: digest(r.Header.Get("X-Api-Key")),
			Custom: digest(r.Header.Get("X-Custom")), KeyParam: digest(r.URL.Query().Get("key")),
			AuthCount: len(r.Header.Values("Authorization")), ProxyAuth: r.Header.Get("Proxy-Authorization"),
			ExtraHeader: r.Header.Get("Anthropic-Version"),
		}
		q := r.URL.Query()
		q.Del("key")
		resp.Query = q.Encode()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
	u.Server = httptest.NewTLSServer(mux)
	t.Cleanup(u.Close)
	return u
}

// caFile writes the upstream's certificate (self-signed CA) for SSL_CERT_FILE.
func (u *upstream) caFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "upstream-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (u *upstream) hostPort() string { return strings.TrimPrefix(u.URL, "https://") }

func (u *upstream) allHeaders() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.seen...)
}

// getJSON does a GET through client and decodes the upstream's answer.
func getJSON(t *testing.T, c *http.Client, rawURL string, hdr http.Header) (int, seenReq, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var s seenReq
	_ = json.Unmarshal(body, &s)
	return resp.StatusCode, s, resp.Header, string(body)
}

// waitFor is the module's one poll-to-a-deadline helper.
var waitFor = testkit.WaitFor

var _ = net.Dial
