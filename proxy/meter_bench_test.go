package proxy

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/usage"
)

// Cost of LLM metering on the request path, in-process on loopback: the
// same server, policy and fake with the meter on (Config.Meter with a file
// store and one covering budget, as serve builds it) and off.
//
//	go test -run '^$' -bench 'Meter' -benchtime 4000x -count 3 ./proxy/

const benchChatReq = `{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`

const benchChatResp = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`

// benchLLM is an OpenAI-shaped upstream: chat JSON, or SSE whose first
// event goes out at once and the rest after the client has read it.
func benchLLM(b *testing.B) *httptest.Server {
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
	b.Cleanup(up.Close)
	return up
}

// meterInproc starts a Server for up whose rule meters OpenAI usage;
// metered false leaves Config.Meter nil.
func meterInproc(b *testing.B, up *httptest.Server, metered bool) *inproc {
	b.Helper()
	host := strings.TrimPrefix(up.URL, "https://")
	ip := startInprocPolicy(b, up, fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n"+
		"  - name: up\n    host: %q\n    credential: bench/key\n    usage: openai\n"+
		"budgets:\n  - {name: big, scope: {rule: up}, limit: {tokens: 1000000000000}, window: month}\n", host),
		func(cfg *Config, budgets []usage.Budget) {
			if !metered {
				return
			}
			st, err := usage.OpenFile(filepath.Join(b.TempDir(), "usage.json"), usage.FileOptions{})
			if err != nil {
				b.Fatal(err)
			}
			mt, _ := usage.NewMetrics(nil)
			m, err := usage.New(usage.Config{Store: st, Budgets: budgets, Metrics: mt, Log: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			cfg.Meter, cfg.MeterStore = m, st
		})
	return ip
}

func benchPost(b *testing.B, c *http.Client, u, body string) {
	resp, err := c.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
}

// BenchmarkMeterChatC50: chat completions (JSON) at 50 concurrent
// clients, meter off and on; compare req/s.
func BenchmarkMeterChatC50(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			up := benchLLM(b)
			ip := meterInproc(b, up, mode == "on")
			c := benchClient(ip.roots, http.ProxyURL(ip.proxyURL), 64)
			u := up.URL + "/v1/chat/completions"
			benchPost(b, c, u, benchChatReq)
			b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchPost(b, c, u, benchChatReq)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			// On a shared machine wall-clock req/s is noisy; CPU time per
			// request (client, airlock and upstream in this process) is what
			// throughput at saturation is inverse to.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
		})
	}
}

// BenchmarkMeterSSEFirstEvent: time from sending a streaming chat request
// to reading its first event, one client, meter off and on (on: airlock
// adds include_usage and strips what the agent did not ask for).
func BenchmarkMeterSSEFirstEvent(b *testing.B) {
	for _, mode := range []string{"off", "on", "on-include-usage"} {
		b.Run(mode, func(b *testing.B) {
			up := benchLLM(b)
			ip := meterInproc(b, up, mode != "off")
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

// startInprocPolicy is startInproc with policyYAML; tune adjusts the
// Config (given the policy's budgets) before the server is built.
func startInprocPolicy(b *testing.B, up *httptest.Server, policyYAML string, tune func(*Config, []usage.Budget)) *inproc {
	b.Helper()
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	pol, err := policy.Parse("bench.yaml", []byte(policyYAML))
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Log: zap.NewNop(), UpstreamRoots: upRoots, ReadHeaderTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second}
	tune(&cfg, UsageBudgets(pol))
	_, l, ca := inprocServer(b, "bench/key", inprocSecret, "tok", policyYAML, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &inproc{addr: l.Addr().String(), roots: roots, upHost: strings.TrimPrefix(up.URL, "https://"),
		proxyURL: &url.URL{Scheme: "http", User: url.UserPassword("bot", "tok"), Host: l.Addr().String()}}
}

// cpuTime is the user + system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
