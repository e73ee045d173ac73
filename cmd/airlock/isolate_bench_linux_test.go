//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/cmd/internal/isolate"
)

// benchClientEnv makes the test binary the load client: "N,C,PROXY,KEEP"
// (PROXY 1: from the environment, 0: Proxy nil; KEEP 1: keep-alive).
const benchClientEnv = "ISO_E2E_BENCH"

func init() {
	if spec := os.Getenv(benchClientEnv); spec != "" {
		os.Exit(benchClient(spec))
	}
}

// benchReport is what the load client prints.
type benchReport struct {
	NsPerOp float64
	P50Ns   float64
	Errors  int
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
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				resp, err := client.Get("https://api.example.test/bench")
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
	slices.Sort(lat)
	_ = json.NewEncoder(os.Stdout).Encode(benchReport{NsPerOp: float64(total.Nanoseconds()) / float64(n), P50Ns: float64(lat[n/2].Nanoseconds()), Errors: errs})
	return 0
}

// BenchmarkIsolate compares requests through the real `airlock serve`:
// "proxy" is `airlock run` with HTTPS_PROXY honoured; "isolate" is
// `airlock run --isolate` with a client that has no proxy configuration
// (redirect, SNI peek, CONNECT hand-off to serve); "isolate-explicit" is
// --isolate with HTTPS_PROXY honoured (spliced to serve). Each at c=1 and
// c=50, with keep-alive and with a new connection per request. The child
// measures; see child-ns/op and p50-ns (ns/op includes process start).
//
//	sudo go test -run '^$' -bench Isolate -benchtime 2000x ./cmd/airlock/
func BenchmarkIsolate(b *testing.B) {
	if err := isolateBenchSupported(); err != nil {
		b.Skip(err)
	}
	be := newBenchEnv(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, conn := range []string{"keepalive", "newconn"} {
		for _, c := range []int{1, 50} {
			for _, mode := range []string{"proxy", "isolate", "isolate-explicit"} {
				b.Run(fmt.Sprintf("%s/c=%d/%s", conn, c, mode), func(b *testing.B) {
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
					out, err := be.run(args...)
					var rep benchReport
					if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &rep) != nil {
						b.Fatalf("bench client failed: %v\n%s", err, out)
					}
					if rep.Errors > 0 {
						b.Fatalf("%d of %d requests failed", rep.Errors, n)
					}
					b.ReportMetric(rep.NsPerOp, "child-ns/op")
					b.ReportMetric(rep.P50Ns, "p50-ns")
				})
			}
		}
	}
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
	env []string
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
	return be
}

func (be *benchEnv) run(args ...string) (string, error) {
	cmd := exec.Command(airlockBin, args...)
	cmd.Env = be.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}
