package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/console"
	"github.com/airlock/airlock/vault"
)

// Benchmarks of the request path, in-process on loopback. The full picture
// (a bare goproxy baseline, concurrency levels, RSS, SSE, 1 MiB, new hosts)
// is `go run ./cmd/airlock-bench`.
//
//	go test -run '^$' -bench . -benchmem ./proxy/

var benchBody = []byte(strings.Repeat("x", 180) + "\n")

// benchUpstream is an HTTP/1.1 TLS upstream answering 181 bytes.
func benchUpstream(b *testing.B) *httptest.Server {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(benchBody)
	}))
	up.StartTLS()
	b.Cleanup(up.Close)
	return up
}

// benchAirlock starts a Server injecting a bearer credential for up and
// returns a client that uses it as its proxy.
func benchAirlock(b *testing.B, up *httptest.Server, conns int) *http.Client {
	ip := startInproc(b, up, io.Discard)
	return benchClient(ip.roots, http.ProxyURL(ip.proxyURL), conns)
}

// inproc is an airlock Server running in the test process, injecting the
// bearer credential "sk-bench-0123456789" for agent bot on every request
// to one upstream, except paths under /denied/.
type inproc struct {
	s        *Server
	addr     string
	proxyURL *url.URL
	roots    *x509.CertPool // airlock's CA
	upHost   string
}

const inprocSecret = "sk-bench-0123456789"

// innerNetHTTP makes startInproc serve MITM'd connections with
// net/http.Server instead of the lean loop (TestInnerSuiteOnNetHTTP).
var innerNetHTTP bool

func startInproc(tb testing.TB, up *httptest.Server, logs io.Writer) *inproc {
	tb.Helper()
	return startInprocRule(tb, up, logs, "")
}

// startInprocRule is startInproc with ruleExtra (YAML lines, indented as
// rule keys) added to the rule "up".
func startInprocRule(tb testing.TB, up *httptest.Server, logs io.Writer, ruleExtra string) *inproc {
	tb.Helper()
	host := strings.TrimPrefix(up.URL, "https://")
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	aw := NewAsyncWriter(logs, 0)
	tb.Cleanup(func() { _ = aw.Close() }) // runs after the server's shutdown
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), aw, zapcore.DebugLevel))
	s, l, ca := inprocServer(tb, "bench/key", inprocSecret, "tok", fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n"+
		"  - name: denied\n    host: %q\n    paths: [\"/denied/**\"]\n    action: deny\n"+
		"  - name: up\n    host: %q\n    credential: bench/key\n%s", host, host, ruleExtra),
		Config{Log: log, UpstreamRoots: upRoots, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second,
			InnerNetHTTP: innerNetHTTP})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &inproc{s: s, addr: l.Addr().String(), roots: roots, upHost: host,
		proxyURL: &url.URL{Scheme: "http", User: url.UserPassword("bot", "tok"), Host: l.Addr().String()}}
}

// inprocServer serves a Server on a loopback listener: a real vault
// (FastKDF, in a temp dir) holding secret at path and agent bot with
// token, policyYAML, a fresh CA, and cfg for the rest of the Config. It
// returns once Serve runs; the test's cleanup shuts it down.
func inprocServer(tb testing.TB, path, secret, token, policyYAML string, cfg Config) (*Server, net.Listener, *certs.CA) {
	tb.Helper()
	v, err := vault.Create(filepath.Join(tb.TempDir(), "vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		tb.Fatal(err)
	}
	err = v.Update(func(d *vault.Data) error {
		d.SetCredential(&vault.Credential{Path: path, Value: vault.NewSecret([]byte(secret))})
		d.SetAgent(&vault.Agent{Name: "bot", TokenHash: vault.HashToken(token)})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := policy.Parse("inproc.yaml", []byte(policyYAML))
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := certs.NewCA("airlock in-process", time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Vault, cfg.Policy, cfg.Certs = v, pol, certs.NewCache(ca, 100)
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	tb.Cleanup(func() { shutdownQuietly(s) })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		ready := s.frontL != nil // dispatch can be called directly from here on
		s.mu.Unlock()
		if ready {
			return s, l, ca
		}
		if time.Now().After(deadline) {
			tb.Fatal("Serve did not start")
		}
	}
}

func shutdownQuietly(s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}

func benchClient(roots *x509.CertPool, proxy func(*http.Request) (*url.URL, error), conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               proxy,
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
}

func benchGet(b *testing.B, c *http.Client, u string) {
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
}

func runRequests(b *testing.B, c *http.Client, u string) {
	benchGet(b, c, u) // warm: connection, leaf
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchGet(b, c, u)
		}
	})
}

// BenchmarkRequestDirect is the floor: the client talks to the upstream.
func BenchmarkRequestDirect(b *testing.B) {
	up := benchUpstream(b)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	runRequests(b, benchClient(roots, nil, 64), up.URL+"/v1/x")
}

// BenchmarkRequestAirlock is the same request through airlock with a
// bearer credential injected, a log line and metrics per request. The
// allocations reported include the client's and the upstream's.
func BenchmarkRequestAirlock(b *testing.B) {
	up := benchUpstream(b)
	runRequests(b, benchAirlock(b, up, 64), up.URL+"/v1/x")
}

// BenchmarkRecord is the per-request audit cost: metrics and the zap line.
func BenchmarkRecord(b *testing.B) {
	aw := NewAsyncWriter(io.Discard, 0)
	defer aw.Close()
	s := &Server{metrics: NewMetrics(), log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), aw, zapcore.InfoLevel))}
	ev := event{agent: "bot", rule: "openai", credential: "openai/key", inject: "bearer", method: "POST",
		host: "api.openai.com", port: 443, path: "/v1/chat/completions", decision: decisionInject, status: 200, bytes: 181, upstream: time.Millisecond}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e := ev
		e.start = time.Now()
		s.record(&e)
	}
}

// BenchmarkInjectBearer is one header injection into an outbound request.
func BenchmarkInjectBearer(b *testing.B) {
	rule := &policy.Rule{Name: "r", Inject: policy.Inject{Type: policy.InjectBearer}}
	cred := &vault.Credential{Path: "p", Value: vault.NewSecret([]byte("sk-0123456789abcdef0123456789abcdef"))}
	req := httptest.NewRequest(http.MethodGet, "https://api.example.com/v1/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := injectHeader(req, rule, cred); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch1000Rules matches against a policy of 1000 rules on 1000
// hosts, the last one matching.
func BenchmarkMatch1000Rules(b *testing.B) {
	var y strings.Builder
	y.WriteString("version: 1\nrules:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - name: r%d\n    host: api%d.example.com\n    methods: [GET, POST]\n    paths: [\"/v1/**\"]\n    credential: c/%d\n", i, i, i)
	}
	pol, err := policy.Parse("bench.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := pol.Match("bot", "POST", "api999.example.com", 443, "/v1/chat/completions"); r == nil || r.Name != "r999" {
			b.Fatalf("matched %v", r)
		}
	}
}

// BenchmarkAsyncWriter is the cost a log line adds to the request path.
func BenchmarkAsyncWriter(b *testing.B) {
	aw := NewAsyncWriter(io.Discard, 1<<16)
	defer aw.Close()
	line := []byte(`{"level":"info","msg":"request","agent":"bot","rule":"openai","status":200}` + "\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = aw.Write(line)
		}
	})
}

// BenchmarkScrubText is the streaming scrubber over 1 MiB of letters (text
// is where a byte often starts some form of the secret).
func BenchmarkScrubText(b *testing.B) {
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	r := scrub.NewReplacer(scrub.Forms([]byte("sk-bench-0f3a9c2e71d84b56a0c3e9f1d2b4a6c8")), []byte("[REDACTED:bench/token]"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sr := scrub.NewReader(bytes.NewReader(body), r, nil)
		if _, err := io.Copy(io.Discard, sr); err != nil {
			b.Fatal(err)
		}
		sr.Release()
	}
}

// BenchmarkRecordConsoleTap is BenchmarkRecord with the console's audit
// tap installed, as `airlock serve` always has it (the live feed).
func BenchmarkRecordConsoleTap(b *testing.B) {
	aw := NewAsyncWriter(io.Discard, 0)
	defer aw.Close()
	s := &Server{metrics: NewMetrics(), log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), aw, zapcore.InfoLevel))}
	feed := console.NewFeed(0)
	s.SetAuditTap(func(l audit.Line) {
		feed.Add(console.Event{Time: l.At, Agent: l.Agent, Method: l.Method, Host: l.Host, Path: l.Path, Rule: l.Rule,
			Credential: l.Credential, Decision: l.Decision, Code: l.Code, Status: l.Status, DurationMS: l.DurationMS})
	})
	ev := event{agent: "bot", rule: "openai", credential: "openai/key", inject: "bearer", method: "POST",
		host: "api.openai.com", port: 443, path: "/v1/chat/completions", decision: decisionInject, status: 200, bytes: 181, upstream: time.Millisecond}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e := ev
		e.start = time.Now()
		s.record(&e)
	}
}
