package examplescheck

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// buildAirlock builds cmd/airlock into a temporary directory.
func buildAirlock(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "airlock")
	out, err := exec.Command("go", "build", "-o", bin, "../../airlock").CombinedOutput()
	if err != nil {
		t.Fatalf("build airlock: %v\n%s", err, out)
	}
	return bin
}

// fakeAPI is a loopback TLS upstream: /v1/chat/completions answers as the
// OpenAI Chat Completions API does (chat.completion with usage, from its
// public API reference), everything else a small JSON document.
type fakeAPI struct {
	*httptest.Server
	caFile string
}

func newFakeAPI(t *testing.T) *fakeAPI {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"hello","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	u := &fakeAPI{Server: httptest.NewTLSServer(mux)}
	t.Cleanup(u.Close)
	u.caFile = filepath.Join(t.TempDir(), "upstream-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw})
	if err := os.WriteFile(u.caFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *fakeAPI) hostPort() string { return strings.TrimPrefix(u.URL, "https://") }

// home is one airlock home made by the CLI, and its running serve.
type home struct {
	t        *testing.T
	bin, dir string
	upCA     string
	downPort string
	proxy    string // proxy listener address
	admin    string // admin listener address
	logs     *lockedBuf
}

func newHome(t *testing.T, bin string, up *fakeAPI) *home {
	h := &home{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "home"), upCA: up.caFile, downPort: refusingPort(t)}
	h.cli("", "init")
	return h
}

func (h *home) environ() []string {
	return append(os.Environ(),
		"AIRLOCK_HOME="+h.dir,
		"AIRLOCK_PASSPHRASE=correct horse battery staple",
		"AIRLOCK_INSECURE_FAST_KDF=1",
		"HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy=",
		"SSL_CERT_FILE="+h.upCA,
	)
}

func (h *home) cli(stdin string, args ...string) string {
	h.t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		h.t.Fatalf("airlock %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// agent registers an agent and returns its proxy URL (host not yet set).
func (h *home) agent(name string) *url.URL {
	u, err := url.Parse(strings.TrimSpace(h.cli("", "agent", "add", name)))
	if err != nil || u.User == nil {
		h.t.Fatalf("agent add %s printed no proxy URL", name)
	}
	return u
}

func (h *home) policy(tmpl string, up *fakeAPI) {
	p := strings.NewReplacer("{{UP}}", up.hostPort(), "{{DOWN}}", h.downPort).Replace(tmpl)
	if err := os.WriteFile(filepath.Join(h.dir, "policy.yaml"), []byte(p), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// serve starts `airlock serve` on loopback ports and waits for its
// "listening" line; the cleanup interrupts it.
func (h *home) serve(t *testing.T) {
	t.Helper()
	cmd := exec.Command(h.bin, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = h.environ()
	h.logs = &lockedBuf{}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(h.logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
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
	select {
	case m := <-ready:
		h.proxy, _ = m["proxy"].(string)
		h.admin, _ = m["admin"].(string)
	case <-exited:
		t.Fatalf("airlock serve exited\n%s", h.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("airlock serve did not start\n%s", h.logs.String())
	}
}

// client is an agent using the proxy and trusting airlock's CA.
func (h *home) client(t *testing.T, agent *url.URL) *http.Client {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(filepath.Join(h.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(b)
	pu := *agent
	pu.Host = h.proxy
	tr := &http.Transport{Proxy: http.ProxyURL(&pu), TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// refusingPort is a loopback port that refuses connections: port 1
// (tcpmux), which no test binds. A port picked from the ephemeral range and
// closed could be handed to a later listener (serve's own, :0).
func refusingPort(t *testing.T) string {
	t.Helper()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:1", time.Second); err == nil {
		c.Close()
		t.Fatal("something listens on 127.0.0.1:1; the upstream-error traffic needs a refusing port")
	}
	return "1"
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

type lockedBuf struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// prometheus is a running Prometheus and its HTTP API.
type prometheus struct {
	base string
	c    *http.Client
}

// startPrometheus runs a real Prometheus on a free loopback port scraping
// the admin listeners every second as job "airlock" (and "airlock-fleet",
// the fleet's job name), loading the shipped alert rules.
func startPrometheus(t *testing.T, bin string, admins ...string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join(root, "examples/prometheus/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	targets, _ := json.Marshal(admins)
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: airlock
    metrics_path: /metrics
    static_configs: [{targets: %s, labels: {env: test}}]
  - job_name: airlock-fleet
    metrics_path: /metrics
    static_configs: [{targets: [%q]}]
`, rules, targets, admins[0])
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := closedPort(t)
	logs := &lockedBuf{}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	p := &prometheus{base: "http://127.0.0.1:" + port, c: &http.Client{Timeout: 5 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.c.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *prometheus) get(path string, q url.Values) (json.RawMessage, error) {
	resp, err := p.c.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %d: %w", path, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr now; a scalar result becomes one sample.
func (p *prometheus) query(expr string) ([]sample, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	switch d.ResultType {
	case "vector":
		var s []sample
		err := json.Unmarshal(d.Result, &s)
		return s, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(d.Result, &v)
		return []sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("result type %s, want an instant vector or scalar", d.ResultType)
}

// hasData returns "" when expr gives at least one non-NaN sample, else why not.
func (p *prometheus) hasData(expr string) string {
	res, err := p.query(expr)
	if err != nil {
		return err.Error()
	}
	if len(res) == 0 {
		return "empty result"
	}
	for _, s := range res {
		str, _ := s.Value[1].(string)
		if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) {
			return ""
		}
	}
	return fmt.Sprintf("only NaN samples (%d)", len(res))
}

// hasSeries returns "" when the selector has a series now, else why not.
func (p *prometheus) hasSeries(sel string) string {
	res, err := p.query(sel)
	if err != nil {
		return err.Error()
	}
	if len(res) == 0 {
		return "empty result"
	}
	return ""
}

func (p *prometheus) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	data, err := p.get("/api/v1/label/"+label+"/values", url.Values{"match[]": {match}})
	if err != nil {
		t.Fatal(err)
	}
	var v []string
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// rulesHealthy checks that Prometheus loaded n alert rules and evaluated
// each without error.
func (p *prometheus) rulesHealthy(t *testing.T, n int) {
	t.Helper()
	var last string
	pollUntil(t, 5*time.Second, func() bool {
		data, err := p.get("/api/v1/rules", url.Values{"type": {"alert"}})
		if err != nil {
			last = err.Error()
			return false
		}
		var d struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			last = err.Error()
			return false
		}
		var bad []string
		count := 0
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				count++
				if r.Health != "ok" {
					bad = append(bad, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.LastError))
				}
			}
		}
		last = fmt.Sprintf("%d rules loaded (want %d); not ok: %v", count, n, bad)
		return count == n && len(bad) == 0
	})
	if !strings.HasPrefix(last, fmt.Sprintf("%d rules loaded (want %d); not ok: []", n, n)) {
		t.Errorf("prometheus rules: %s", last)
	}
}
