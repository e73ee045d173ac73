package usage

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the user + system CPU time of this process: on a shared
// machine wall time per op is noise, CPU time per op is not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStream is n chat chunks as the provider sends them, with
// include_usage when withUsage.
func benchStream(n int, withUsage bool) []byte {
	tail := ""
	if withUsage {
		tail = `,"usage":null`
	}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"token %d "},"logprobs":null,"finish_reason":null}]%s}`+"\n\n", i, tail)
	}
	if withUsage {
		b.WriteString(`data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"total_tokens":110}}` + "\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// eventReader returns one event per Read, like a flushed SSE upstream.
type eventReader struct{ evs [][]byte }

func (r *eventReader) Read(p []byte) (int, error) {
	if len(r.evs) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.evs[0])
	if r.evs[0] = r.evs[0][n:]; len(r.evs[0]) == 0 {
		r.evs = r.evs[1:]
	}
	return n, nil
}

func splitEvents(s []byte) [][]byte {
	var out [][]byte
	for _, e := range strings.SplitAfter(string(s), "\n\n") {
		if e != "" {
			out = append(out, []byte(e))
		}
	}
	return out
}

// BenchmarkObserverSSE: cost per SSE event of relaying through the meter,
// against relaying the raw body (off).
func BenchmarkObserverSSE(b *testing.B) {
	const n = 200
	m, _ := New(Config{Store: NewMemStore()})
	for _, mode := range []string{"off", "meter", "strip"} {
		b.Run(mode, func(b *testing.B) {
			src := benchStream(n, mode != "off")
			evs := splitEvents(src)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				body := io.NopCloser(&eventReader{evs: append([][]byte(nil), evs...)})
				var rc io.ReadCloser = body
				if mode != "off" {
					tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x",
						info: RequestInfo{Endpoint: EndpointChat, Rewritten: mode == "strip"}}
					resp := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: body}
					tk.Wrap(resp)
					rc = resp.Body
				}
				for {
					if _, err := rc.Read(buf); err != nil {
						break
					}
				}
				rc.Close()
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*(n+2)), "cpu-ns/event")
		})
	}
}

// BenchmarkObserverJSON: cost per JSON answer (a 1 KiB chat completion and
// a 1 MiB embeddings list).
func BenchmarkObserverJSON(b *testing.B) {
	f := &fake{usage: usageA, model: "gpt-4o-2024-08-06", chunks: []string{"Hello, world!"}}
	emb := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[` + strings.Repeat("0.0023064255,", 80000) + `0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`
	m, _ := New(Config{Store: NewMemStore()})
	for name, doc := range map[string]struct {
		ep   Endpoint
		body string
	}{"chat-1KiB": {EndpointChat, f.chatJSON()}, "embeddings-1MiB": {EndpointEmbeddings, emb}} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/meter=%v", name, on), func(b *testing.B) {
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(len(doc.body)))
				for b.Loop() {
					var rc io.ReadCloser = io.NopCloser(strings.NewReader(doc.body))
					if on {
						tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x", info: RequestInfo{Endpoint: doc.ep}}
						resp := &http.Response{Header: http.Header{"Content-Type": {"application/json"}}, Body: rc}
						tk.Wrap(resp)
						rc = resp.Body
					}
					for {
						if _, err := rc.Read(buf); err != nil {
							break
						}
					}
					rc.Close()
				}
			})
		}
	}
}

// BenchmarkFirstEvent: time from request to the first SSE event through a
// loopback gateway, metering off vs on (rewritten stream), real HTTP.
func BenchmarkFirstEvent(b *testing.B) {
	up := newFake(b)
	for _, mode := range []string{"off", "meter", "meter-rewrite"} {
		b.Run(mode, func(b *testing.B) {
			g := newGateway(b, up, NewMemStore(), nil, openaiTarget)
			g.meterOn = mode != "off"
			body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`
			if mode == "meter-rewrite" {
				body = `{"model":"gpt-4o","stream":true}`
			}
			var first time.Duration
			for b.Loop() {
				start := time.Now()
				resp, err := http.Post(g.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				buf := make([]byte, 1)
				if _, err := resp.Body.Read(buf); err != nil {
					b.Fatal(err)
				}
				first += time.Since(start)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ReportMetric(float64(first.Microseconds())/float64(b.N), "µs-to-first-event")
		})
	}
}

// BenchmarkMeterRequest: the meter's whole cost for one request, as the
// proxy runs it (admission with a budget, the JSON answer read through the
// metering body, the record): chat JSON, and a streaming chat that did not
// ask for usage (rewritten and stripped).
func BenchmarkMeterRequest(b *testing.B) {
	const req = `{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
	const resp = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`
	sseReq := strings.Replace(req, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
	sse := benchStream(4, true)
	for _, window := range []string{"month", "24h"} {
		for _, kind := range []string{"chat", "sse"} {
			b.Run(window+"/"+kind, func(b *testing.B) {
				mt, _ := NewMetrics(nil)
				m, err := New(Config{Store: NewMemStore(), Metrics: mt, Budgets: []Budget{{Name: "big", Rule: openaiTarget.Rule, Tokens: 1 << 50, Window: window}}})
				if err != nil {
					b.Fatal(err)
				}
				body, ct := req, "application/json"
				var evs [][]byte
				if kind == "sse" {
					body, ct, evs = sseReq, "text/event-stream", splitEvents(sse)
				}
				buf := make([]byte, 32<<10)
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					r, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
					tk, err := m.Admit(r.Context(), openaiTarget, r)
					if err != nil || tk == nil {
						b.Fatal(tk, err)
					}
					var rd io.Reader = strings.NewReader(resp)
					if kind == "sse" {
						rd = &eventReader{evs: append([][]byte(nil), evs...)}
					}
					res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(rd)}
					tk.Wrap(res)
					for {
						if _, err := res.Body.Read(buf); err != nil {
							break
						}
					}
					res.Body.Close()
					if tk.Result().Outcome != OutcomeOK {
						b.Fatal(tk.Result())
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// benchChatAnswer is a real-shaped Chat Completions answer.
const benchChatAnswer = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`

// BenchmarkTopWalk: the walk over a whole chat answer (syntax checked,
// top-level captures, usage decoded), the meter's main cost on JSON.
func BenchmarkTopWalk(b *testing.B) {
	body := []byte(benchChatAnswer)
	paths := pathsFor(EndpointChat, false)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var c topCaptures
		if !c.scan(body, paths) || !c.pre {
			b.Fatal("not walked")
		}
	}
}
