package proxy

import (
	"bufio"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/usage"
)

// Cost of LLM metering on the request path: the same server, policy (a
// rule with `usage: openai` and a budget covering it) and fake upstream,
// with the meter on (Config.Meter with a file store, as serve builds it)
// and off (Config.Meter nil), log lines JSON-encoded as serve does (to
// io.Discard). Figures are CPU time (getrusage), not wall
// time: on a shared machine only CPU per request is stable.
//
// BenchmarkMeterProxy is the figure: the proxy runs in the
// benchmark process, the 50 clients and the upstream in a child process,
// so the CPU and allocations per request are airlock's own; off and on
// take turns within one run:
//
//	go test -run '^$' -bench MeterProxy -benchtime 8000x -count 3 ./proxy/
//
// cost-% is the ratio of the sums; cost-med-% the median of the rounds'
// ratios (an off and an on block next to each other in time), which a
// burst of other load on a shared machine moves less (run with smaller
// blocks, AIRLOCK_METER_BLOCK=200, for more rounds).
//
// BenchmarkMeterChatC50 runs everything in one process (client, airlock,
// upstream: cpu-µs/req is their sum).

const benchChatReq = `{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`

const benchSSEReq = `{"model":"gpt-4o","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`

const benchChatResp = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`

// benchLLM is an OpenAI-shaped upstream: chat JSON, or SSE whose first
// event goes out at once and the rest after the client has read it.
func benchLLM(tb testing.TB) *httptest.Server {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, benchChatResp)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		chunk := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]`
		tail := ""
		if strings.Contains(string(body), `"include_usage":true`) {
			tail = `,"usage":null`
		}
		_, _ = fmt.Fprintf(w, "data: %s%s}\n\n", chunk, tail)
		fl.Flush()
		for range 3 {
			_, _ = fmt.Fprintf(w, "data: %s%s}\n\n", chunk, tail)
		}
		if tail != "" {
			_, _ = io.WriteString(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29}}`+"\n\n")
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	up.StartTLS()
	tb.Cleanup(up.Close)
	return up
}

// meterInproc starts a Server for the upstream at upURL (certificate
// upCert) whose rule meters OpenAI usage under a budget; metered false
// leaves Config.Meter nil. It returns the server and airlock's CA.
func meterInproc(b *testing.B, upURL string, upCert *x509.Certificate, metered bool) (*inproc, *x509.Certificate) {
	b.Helper()
	host := strings.TrimPrefix(upURL, "https://")
	return startInprocPolicy(b, upCert, fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n"+
		"  - name: up\n    host: %q\n    credential: bench/key\n    usage: openai\n"+
		"budgets:\n  - {name: big, scope: {rule: up}, limit: {tokens: 1000000000000}, window: month}\n", host),
		func(cfg *Config, budgets []usage.Budget) {
			if !metered {
				if spin := spinObserver(); spin != nil {
					cfg.Observers = append(cfg.Observers, spin)
				}
				return
			}
			st, err := usage.OpenFile(filepath.Join(b.TempDir(), "usage.json"), usage.FileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			mt, _ := usage.NewMetrics(nil)
			m, err := usage.New(usage.Config{Store: st, Budgets: budgets, Metrics: mt, Log: cfg.Log})
			if err != nil {
				b.Fatal(err)
			}
			cfg.Meter, cfg.MeterStore = m, st
		})
}

func benchPost(tb testing.TB, c *http.Client, u, body string) {
	resp, err := c.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
}

// benchConc is the number of concurrent clients.
const benchConc = 50

// warmConns opens the clients' connections (and through them airlock's
// upstream connections) before the timer starts: a TLS handshake costs
// about a millisecond of CPU, so 2×50 of them inside a 4000-request run
// would add ~30 µs to every request.
func warmConns(tb testing.TB, c *http.Client, u, body string) {
	var wg sync.WaitGroup
	for range benchConc {
		wg.Go(func() {
			for range 4 {
				benchPost(tb, c, u, body)
			}
		})
	}
	wg.Wait()
}

// BenchmarkMeterChatC50: chat completions (JSON) at 50 concurrent
// clients, meter off and on, everything in this process.
func BenchmarkMeterChatC50(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			up := benchLLM(b)
			ip, _ := meterInproc(b, up.URL, up.Certificate(), mode == "on")
			c := benchClient(ip.roots, http.ProxyURL(ip.proxyURL), 64)
			u := up.URL + "/v1/chat/completions"
			warmConns(b, c, u, benchChatReq)
			b.SetParallelism(max(1, benchConc/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchPost(b, c, u, benchChatReq)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			// client, airlock and upstream in this process
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}

// BenchmarkMeterProxy: airlock's own CPU time and allocations per request
// at 50 concurrent clients, chat JSON and streaming chat (SSE: on adds
// include_usage upstream and strips it from the relayed stream), meter
// off and on. The clients and the upstream run in a child process (see
// meterLoad). Both servers run side by side and take the load in
// alternating blocks of meterBlock requests (off, on, on, off, ...), so
// the machine's other load falls on both alike; b.N requests go to each.
func BenchmarkMeterProxy(b *testing.B) {
	for _, kind := range []string{"chat", "sse"} {
		b.Run(kind, func(b *testing.B) {
			ld := meterLoadChild(b)
			for i, metered := range []bool{false, true} {
				ip, ca := meterInproc(b, ld.upURL, ld.upCert, metered)
				ld.send(b, "run %d %s %s %s", i, ip.proxyURL, base64.StdEncoding.EncodeToString(ca.Raw), kind)
				ld.expect(b, "warm")
			}
			var cpu [2]time.Duration
			var rounds []float64 // each round's on/off CPU ratio
			var allocs, bytes, sysr, sysw [2]uint64
			var ms runtime.MemStats
			side := profileSide()
			stop := profileRun(b)
			b.ResetTimer()
			for done, round := 0, 0; done < b.N; round++ {
				n := min(meterBlock, b.N-done)
				var blk [2]time.Duration
				for k := range 2 {
					i := k ^ round&1 // off first in even rounds, on first in odd ones
					if side >= 0 && i != side {
						continue
					}
					runtime.ReadMemStats(&ms)
					r0, w0 := syscalls()
					m0, b0, c0 := ms.Mallocs, ms.TotalAlloc, cpuTime()
					ld.send(b, "go %d %d", i, n)
					ld.expect(b, "done")
					blk[i] = cpuTime() - c0
					cpu[i] += blk[i]
					r1, w1 := syscalls()
					sysr[i], sysw[i] = sysr[i]+r1-r0, sysw[i]+w1-w0
					runtime.ReadMemStats(&ms)
					allocs[i] += ms.Mallocs - m0
					bytes[i] += ms.TotalAlloc - b0
				}
				if blk[0] > 0 && blk[1] > 0 {
					rounds = append(rounds, float64(blk[1])/float64(blk[0]))
				}
				done += n
			}
			b.StopTimer()
			stop()
			per := func(v float64) float64 { return v / float64(b.N) }
			b.ReportMetric(per(float64(cpu[0].Nanoseconds())/1e3), "off-cpu-µs/req")
			b.ReportMetric(per(float64(cpu[1].Nanoseconds())/1e3), "on-cpu-µs/req")
			b.ReportMetric(100*(float64(cpu[1])/float64(cpu[0])-1), "cost-%")
			if len(rounds) > 0 { // the median round: a burst of other load on the machine spoils one round, not the figure
				slices.Sort(rounds)
				b.ReportMetric(100*(rounds[len(rounds)/2]-1), "cost-med-%")
			}
			b.ReportMetric(per(float64(allocs[0])), "off-allocs/req")
			b.ReportMetric(per(float64(allocs[1])), "on-allocs/req")
			b.ReportMetric(per(float64(bytes[0])), "off-B/req")
			b.ReportMetric(per(float64(bytes[1])), "on-B/req")
			if sysw[0] > 0 {
				b.ReportMetric(per(float64(sysr[0])), "off-reads/req")
				b.ReportMetric(per(float64(sysr[1])), "on-reads/req")
				b.ReportMetric(per(float64(sysw[0])), "off-writes/req")
				b.ReportMetric(per(float64(sysw[1])), "on-writes/req")
			}
			for i := range 2 {
				ld.send(b, "close %d", i)
				ld.expect(b, "closed")
			}
		})
	}
}

// meterBlock is the number of requests in one block of BenchmarkMeterProxy
// (AIRLOCK_METER_BLOCK overrides it: smaller blocks interleave off and on
// more finely, so bursts of other load on the machine fall on both alike).
var meterBlock = func() int {
	if n, err := strconv.Atoi(os.Getenv("AIRLOCK_METER_BLOCK")); err == nil && n > 0 {
		return n
	}
	return 1000
}()

// spinObserver, when AIRLOCK_METER_SPIN is a duration (say 4us), is an
// observer for the meter-off server that burns about that much CPU per
// response in a loop of its own: what airlock's cost grows by when its
// request path grows by pure computation of a known size (off + spin vs
// on tells whether the meter's cost is its own code or comes on top).
func spinObserver() Observer {
	d, err := time.ParseDuration(os.Getenv("AIRLOCK_METER_SPIN"))
	if err != nil || d <= 0 {
		return nil
	}
	const calib = 1 << 24
	c0 := cpuTime()
	spinSink += spinLoop(calib)
	per := float64(cpuTime()-c0) / calib
	n := int(float64(d) / per)
	return func(*http.Response, *door.Decision) error {
		spinSink += spinLoop(n)
		return nil
	}
}

var spinSink uint64

//go:noinline
func spinLoop(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// profileSide is the one server that takes load when AIRLOCK_METER_SIDE
// is off or on (to profile each alone and diff them), else -1: both.
func profileSide() int {
	switch os.Getenv("AIRLOCK_METER_SIDE") {
	case "off":
		return 0
	case "on":
		return 1
	}
	return -1
}

// profileRun starts a CPU profile of the timed part at 500 Hz (the
// default 100 Hz gives too few samples to compare a few microseconds per
// request) when AIRLOCK_METER_PROFILE names the file: an env var, since
// -test.cpuprofile would also cover the setup.
func profileRun(b *testing.B) (stop func()) {
	path := os.Getenv("AIRLOCK_METER_PROFILE")
	if path == "" || b.N < 100 {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	runtime.SetCPUProfileRate(500)
	if err := pprof.StartCPUProfile(f); err != nil { // keeps the rate set above (and says so on stderr)
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// meterLoad is the child process of BenchmarkMeterProxy: it serves the
// fake upstream and, on command, runs the clients through a proxy.
type meterLoad struct {
	upURL  string
	upCert *x509.Certificate
	in     io.Writer
	out    *bufio.Reader
}

var (
	meterLoadOnce sync.Once
	meterLoadProc *meterLoad
	meterLoadErr  error
)

// meterLoadEnv makes the test binary the load side (TestMeterLoadChild).
const meterLoadEnv = "AIRLOCK_METER_LOAD"

// meterLoadChild starts the child once per benchmark process; it exits
// when this process does (its stdin closes).
func meterLoadChild(b *testing.B) *meterLoad {
	meterLoadOnce.Do(func() {
		// under its own name, so profilers (perf --comm) tell it apart
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("meterload-%d", os.Getpid()))
		if err := os.Symlink(os.Args[0], bin); err != nil {
			bin = os.Args[0]
		} else {
			defer os.Remove(bin) // once started, the child needs the name no more
		}
		cmd := exec.Command(bin, "-test.run", "^TestMeterLoadChild$", "-test.count", "1")
		cmd.Env = append(os.Environ(), meterLoadEnv+"=1", "GOMAXPROCS="+strconv.Itoa(runtime.GOMAXPROCS(0)))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			meterLoadErr = err
			return
		}
		r, w, err := os.Pipe()
		if err != nil {
			meterLoadErr = err
			return
		}
		cmd.ExtraFiles = []*os.File{w} // fd 3: the child's answers
		if err := cmd.Start(); err != nil {
			meterLoadErr = err
			return
		}
		_ = w.Close()
		ld := &meterLoad{in: in, out: bufio.NewReader(r)}
		line, err := ld.out.ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 3 || f[0] != "up" {
			meterLoadErr = fmt.Errorf("load child: %q, %v", line, err)
			return
		}
		der, err := base64.StdEncoding.DecodeString(f[2])
		if err == nil {
			ld.upCert, err = x509.ParseCertificate(der)
		}
		if err != nil {
			meterLoadErr = fmt.Errorf("load child: upstream certificate: %w", err)
			return
		}
		ld.upURL, meterLoadProc = f[1], ld
	})
	if meterLoadErr != nil {
		b.Fatal(meterLoadErr)
	}
	return meterLoadProc
}

func (ld *meterLoad) send(b *testing.B, format string, args ...any) {
	if _, err := fmt.Fprintf(ld.in, format+"\n", args...); err != nil {
		b.Fatalf("load child: %v", err)
	}
}

func (ld *meterLoad) expect(b *testing.B, want string) {
	line, err := ld.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != want {
		b.Fatalf("load child: got %q (%v), want %q", line, err, want)
	}
}

// TestMeterLoadChild is the load side of BenchmarkMeterProxy, run only as
// its child (AIRLOCK_METER_LOAD=1). Commands on stdin, answers on fd 3:
//
//	(start)                         → up URL CERT-BASE64
//	run I PROXYURL CA-BASE64 KIND   → warm   (client I's connections open)
//	go I N                          → done   (N requests by client I, 50 concurrent)
//	close I                         → closed (client I's idle connections closed)
func TestMeterLoadChild(t *testing.T) {
	if os.Getenv(meterLoadEnv) != "1" {
		t.Skip("the load side of BenchmarkMeterProxy (its child process)")
	}
	out := os.NewFile(3, "answers")
	up := benchLLM(t)
	fmt.Fprintf(out, "up %s %s\n", up.URL, base64.StdEncoding.EncodeToString(up.Certificate().Raw))
	var clients [2]*http.Client
	var bodies [2]string
	u := up.URL + "/v1/chat/completions"
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		i := 0
		if len(f) > 1 {
			i, _ = strconv.Atoi(f[1])
		}
		if i < 0 || i > 1 {
			t.Fatalf("bad command %q", sc.Text())
		}
		switch {
		case len(f) == 5 && f[0] == "run":
			pu, err := url.Parse(f[2])
			der, err2 := base64.StdEncoding.DecodeString(f[3])
			ca, err3 := x509.ParseCertificate(der)
			if err != nil || err2 != nil || err3 != nil {
				t.Fatalf("bad run command %q", sc.Text())
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			clients[i] = benchClient(roots, http.ProxyURL(pu), 64)
			bodies[i] = benchChatReq
			if f[4] == "sse" {
				bodies[i] = benchSSEReq
			}
			warmConns(t, clients[i], u, bodies[i])
			fmt.Fprintln(out, "warm")
		case len(f) == 3 && f[0] == "go" && clients[i] != nil:
			n, _ := strconv.Atoi(f[2])
			var wg sync.WaitGroup
			var next sync.Mutex
			left := n
			for range benchConc {
				wg.Go(func() {
					for {
						next.Lock()
						if left == 0 {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						benchPost(t, clients[i], u, bodies[i])
					}
				})
			}
			wg.Wait()
			fmt.Fprintln(out, "done")
		case len(f) == 2 && f[0] == "close" && clients[i] != nil:
			clients[i].CloseIdleConnections()
			clients[i] = nil
			fmt.Fprintln(out, "closed")
		default:
			t.Fatalf("bad command %q", sc.Text())
		}
	}
}

// BenchmarkMeterSSEFirstEvent: time from sending a streaming chat request
// to reading its first event, one client, meter off and on (on: airlock
// adds include_usage and strips what the agent did not ask for).
func BenchmarkMeterSSEFirstEvent(b *testing.B) {
	for _, mode := range []string{"off", "on", "on-include-usage"} {
		b.Run(mode, func(b *testing.B) {
			up := benchLLM(b)
			ip, _ := meterInproc(b, up.URL, up.Certificate(), mode != "off")
			c := benchClient(ip.roots, http.ProxyURL(ip.proxyURL), 4)
			u := up.URL + "/v1/chat/completions"
			body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			if mode == "on-include-usage" { // the agent asked for usage: nothing rewritten or stripped
				body = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
			}
			benchPost(b, c, u, body)
			var first time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				resp, err := c.Post(u, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReader(resp.Body)
				if _, err := br.ReadString('\n'); err != nil {
					b.Fatal(err)
				}
				first += time.Since(t0)
				_, _ = io.Copy(io.Discard, br)
				_ = resp.Body.Close()
			}
			b.ReportMetric(float64(first.Microseconds())/float64(b.N), "µs-first-event")
		})
	}
}

// startInprocPolicy is startInproc with policyYAML for the upstream whose
// certificate is upCert; tune adjusts the Config (given the policy's
// budgets) before the server is built. It returns airlock's CA too.
func startInprocPolicy(b *testing.B, upCert *x509.Certificate, policyYAML string, tune func(*Config, []usage.Budget)) (*inproc, *x509.Certificate) {
	b.Helper()
	upRoots := x509.NewCertPool()
	upRoots.AddCert(upCert)
	pol, err := policy.Parse("bench.yaml", []byte(policyYAML))
	if err != nil {
		b.Fatal(err)
	}
	// lines encoded as serve encodes them (JSON, info and up), then dropped
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	cfg := Config{Log: log, UpstreamRoots: upRoots, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	tune(&cfg, UsageBudgets(pol))
	_, l, ca := inprocServer(b, "bench/key", inprocSecret, "tok", policyYAML, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &inproc{addr: l.Addr().String(), roots: roots,
		proxyURL: &url.URL{Scheme: "http", User: url.UserPassword("bot", "tok"), Host: l.Addr().String()}}, ca.Cert
}

// syscalls is the number of read and write system calls of this process
// so far (/proc/self/io; 0 where it cannot be read): an extra flush or a
// body written in two pieces shows here.
func syscalls() (reads, writes uint64) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		x, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "syscr":
			reads = x
		case "syscw":
			writes = x
		}
	}
	return reads, writes
}

// cpuTime is the user + system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
