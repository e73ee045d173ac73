//go:build linux

package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/internal/isolate"
)

// benchClientEnv makes the test binary the load client: "N,C,PROXY,KEEP"
// (PROXY 1: from the environment, 0: Proxy nil; KEEP 1: keep-alive).
const benchClientEnv = "ISO_E2E_BENCH"

// benchRoundsEnv sets how many interleaved rounds BenchmarkIsolate runs
// (default 1): every mode once per round, so machine noise hits all alike.
const benchRoundsEnv = "ISO_BENCH_ROUNDS"

func init() {
	if spec := os.Getenv(benchClientEnv); spec != "" {
		os.Exit(benchClient(spec))
	}
}

// benchReport is what the load client prints.
type benchReport struct {
	NsPerOp float64
	P50Ns   float64
	FirstNs float64 // the first request (DNS, connection, handshake)
	// The first request's phases, from its start: DNS answered, TCP
	// connected, TLS handshake done.
	FirstDNSNs, FirstConnNs, FirstTLSNs float64
	CPUNs                               float64 // the client's own user+system time
	Errors                              int
}

// benchClient makes N GETs to https://api.example.test/ at concurrency C.
func benchClient(spec string) int {
	f := strings.Split(spec, ",")
	n, _ := strconv.Atoi(f[0])
	c, _ := strconv.Atoi(f[1])
	tr := &http.Transport{DisableKeepAlives: f[3] != "1", MaxIdleConnsPerHost: c}
	if f[2] == "1" {
		tr.Proxy = http.ProxyFromEnvironment
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, n)
	var mu sync.Mutex // guards errs
	errs := 0
	work := make(chan int)
	var wg sync.WaitGroup
	var rep benchReport
	first := firstTrace(&rep)
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/bench", nil)
				if i == 0 {
					req = req.WithContext(httptrace.WithClientTrace(req.Context(), first(t0)))
				}
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					mu.Lock()
					errs++
					mu.Unlock()
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	total := time.Since(start)
	rep.FirstNs = float64(lat[0].Nanoseconds())
	slices.Sort(lat)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	rep.NsPerOp = float64(total.Nanoseconds()) / float64(n)
	rep.P50Ns = float64(lat[n/2].Nanoseconds())
	rep.CPUNs = float64(ru.Utime.Nano() + ru.Stime.Nano())
	rep.Errors = errs
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// firstTrace returns a trace for the first request, recording its phases
// into rep (the request runs before rep is printed).
func firstTrace(rep *benchReport) func(t0 time.Time) *httptrace.ClientTrace {
	return func(t0 time.Time) *httptrace.ClientTrace {
		since := func() float64 { return float64(time.Since(t0).Nanoseconds()) }
		return &httptrace.ClientTrace{
			DNSDone:          func(httptrace.DNSDoneInfo) { rep.FirstDNSNs = since() },
			ConnectDone:      func(string, string, error) { rep.FirstConnNs = since() },
			TLSHandshakeDone: func(tls.ConnectionState, error) { rep.FirstTLSNs = since() },
		}
	}
}

// BenchmarkIsolate compares requests through the real `airlock serve`:
// "proxy" is `airlock run` with HTTPS_PROXY honoured; "isolate" is
// `airlock run --isolate` with a client that has no proxy configuration
// (redirect, SNI peek, hand-off to serve); "isolate-explicit" is
// --isolate with HTTPS_PROXY honoured (spliced to serve). Each at c=1 and
// c=50, with keep-alive and with a new connection per request.
//
// The child measures wall time (child-ns/op, p50-ns; ns/op includes
// process start). Because the machine is shared, CPU time per request is
// the figure to compare: serve-cpu-ns/op (utime+stime of the serve
// process from /proc/PID/stat, kernel work done in its context included),
// client-cpu-ns/op (the load client's rusage), run-cpu-ns/op (airlock run,
// its namespace init and door, without the client) and machine-cpu-ns/op
// (every CPU's non-idle time from /proc/stat: includes softirq work done
// outside both processes, and other load). ISO_BENCH_ROUNDS=N interleaves
// N rounds of every mode and logs medians and the overhead over "proxy".
//
//	sudo ISO_BENCH_ROUNDS=5 go test -run '^$' -bench 'Isolate/keepalive' -benchtime 20000x ./cmd/airlock/
func BenchmarkIsolate(b *testing.B) {
	if err := isolateBenchSupported(); err != nil {
		b.Skip(err)
	}
	be := newBenchEnv(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	rounds, _ := strconv.Atoi(os.Getenv(benchRoundsEnv))
	sum := benchSummary{}
	for range max(rounds, 1) {
		for _, conn := range []string{"keepalive", "newconn"} {
			for _, c := range []int{1, 50} {
				for _, mode := range []string{"proxy", "isolate", "isolate-explicit"} {
					name := fmt.Sprintf("%s/c=%d/%s", conn, c, mode)
					b.Run(name, func(b *testing.B) {
						m := be.measure(b, self, conn, c, mode)
						if b.N > 1 { // not the framework's b.N=1 probe
							sum.add(name, m)
						}
					})
				}
			}
		}
	}
	sum.log(b)
}

// benchMeasure is one run of the load client.
type benchMeasure map[string]float64

func (be *benchEnv) measure(b *testing.B, self, conn string, c int, mode string) benchMeasure {
	n := max(b.N, c)
	proxy := "1"
	args := []string{"run", "--agent", "bot", "--"}
	if mode != "proxy" {
		args = []string{"run", "--isolate", "--agent", "bot", "--"}
	}
	if mode == "isolate" {
		proxy = "0"
	}
	keep := map[string]string{"keepalive": "1", "newconn": "0"}[conn]
	spec := fmt.Sprintf("%d,%d,%s,%s", n, c, proxy, keep)
	args = append(args, "env", benchClientEnv+"="+spec, self)
	serve0, mach0 := procCPU(b, be.servePid), machineCPU(b)
	out, runCPU, err := be.run(args...)
	serve1, mach1 := procCPU(b, be.servePid), machineCPU(b)
	var rep benchReport
	if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &rep) != nil {
		b.Fatalf("bench client failed: %v\n%s", err, out)
	}
	if rep.Errors > 0 {
		b.Fatalf("%d of %d requests failed", rep.Errors, n)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	m := benchMeasure{
		"child-ns/op":       rep.NsPerOp,
		"p50-ns":            rep.P50Ns,
		"first-ns":          rep.FirstNs,
		"first-dns-ns":      rep.FirstDNSNs,
		"first-conn-ns":     rep.FirstConnNs,
		"first-tls-ns":      rep.FirstTLSNs,
		"serve-cpu-ns/op":   per(serve1 - serve0),
		"client-cpu-ns/op":  rep.CPUNs / float64(n),
		"run-cpu-ns/op":     per(runCPU) - rep.CPUNs/float64(n),
		"machine-cpu-ns/op": per(mach1 - mach0),
	}
	for _, k := range benchUnits {
		b.ReportMetric(m[k], k)
	}
	return m
}

// benchUnits orders the metrics of a benchMeasure.
var benchUnits = []string{"child-ns/op", "p50-ns", "first-dns-ns", "first-conn-ns", "first-tls-ns", "first-ns", "serve-cpu-ns/op", "client-cpu-ns/op", "run-cpu-ns/op", "machine-cpu-ns/op"}

// benchSummary collects every round's measures per sub-benchmark.
type benchSummary struct {
	mu    sync.Mutex // guards order and runs
	order []string
	runs  map[string][]benchMeasure
}

func (s *benchSummary) add(name string, m benchMeasure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string][]benchMeasure{}
	}
	if _, ok := s.runs[name]; !ok {
		s.order = append(s.order, name)
	}
	s.runs[name] = append(s.runs[name], m)
}

// median of unit over name's runs.
func (s *benchSummary) median(name, unit string) float64 {
	var v []float64
	for _, m := range s.runs[name] {
		v = append(v, m[unit])
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// log prints the medians and, for the isolated modes, the overhead over
// "proxy" at the same connection mode and concurrency.
func (s *benchSummary) log(b *testing.B) {
	var out strings.Builder
	fmt.Fprintf(&out, "medians over interleaved rounds (overhead vs proxy in brackets)\n%-34s %5s", "", "runs")
	for _, u := range benchUnits {
		fmt.Fprintf(&out, " %18s", u)
	}
	out.WriteString("\n")
	for _, name := range s.order {
		base := name[:strings.LastIndex(name, "/")] + "/proxy"
		fmt.Fprintf(&out, "%-34s %5d", name, len(s.runs[name]))
		for _, u := range benchUnits {
			v := s.median(name, u)
			cell := fmt.Sprintf("%.0f", v)
			if bv := s.median(base, u); name != base && bv > 0 {
				cell += fmt.Sprintf(" (%+.0f%%)", 100*(v-bv)/bv)
			}
			fmt.Fprintf(&out, " %18s", cell)
		}
		out.WriteString("\n")
	}
	b.Log(out.String())
}

// procCPU is pid's utime+stime (all threads) from /proc/PID/stat.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatalf("serve cpu: %v", err)
	}
	// Fields after the ")" closing comm: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

// clkTck is USER_HZ, the unit of /proc's CPU times (100 on every Linux
// architecture Go supports).
const clkTck = 100

// machineCPU is the non-idle time of every CPU from /proc/stat.
func machineCPU(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatalf("machine cpu: %v", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy int64
	for i, v := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // idle, iowait; guest is in user already
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / clkTck
}

func isolateBenchSupported() error {
	if err := isolate.Supported(); err != nil {
		return fmt.Errorf("root isolation unavailable here: %w", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("unshare (util-linux) is not installed")
	}
	return nil
}

// benchEnv is a home (agent bot, the policy, one secret) and a real serve,
// built with the airlock binary directly (tenv needs a *testing.T).
type benchEnv struct {
	env      []string
	servePid int
	admin    string // serve's admin address (pprof when enabled)
}

func newBenchEnv(b *testing.B) *benchEnv {
	home := filepath.Join(b.TempDir(), "home")
	be := &benchEnv{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIRLOCK_") {
			be.env = append(be.env, kv)
		}
	}
	be.env = append(be.env, "AIRLOCK_HOME="+home, "AIRLOCK_INSECURE_FAST_KDF=1", "AIRLOCK_PASSPHRASE="+testPassphrase)
	for _, step := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"init"}},
		{"sk-bench-secret-value\n", []string{"vault", "set", "test/openai"}},
		{"sk-bench-other-value\n", []string{"vault", "set", "test/anthropic"}},
		{"", []string{"agent", "add", "bot"}},
	} {
		cmd := exec.Command(airlockBin, step.args...)
		cmd.Env, cmd.Stdin = be.env, strings.NewReader(step.stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("airlock %v: %v\n%s", step.args, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "policy.yaml"), []byte(isoPolicy), 0o644); err != nil {
		b.Fatal(err)
	}
	s := startIsoServe(b, be.env, newFakeLLM(b), "--log-format", "json")
	be.env = append(be.env, "AIRLOCK_LISTEN="+s.addr)
	be.servePid, be.admin = s.pid, s.admin
	return be
}

// run runs airlock with args and returns its stdout and the CPU time of
// the process and the children it waited for.
func (be *benchEnv) run(args ...string) (string, time.Duration, error) {
	cmd := exec.Command(airlockBin, args...)
	cmd.Env = be.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), 0, err
	}
	return string(out), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
