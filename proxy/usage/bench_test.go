package usage

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

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
			for b.Loop() {
				body := io.NopCloser(&eventReader{evs: append([][]byte(nil), evs...)})
				var rc io.ReadCloser = body
				if mode != "off" {
					tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x",
						info: &RequestInfo{Endpoint: EndpointChat, Rewritten: mode == "strip"}}
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
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(n+2)), "ns/event")
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
						tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x", info: &RequestInfo{Endpoint: doc.ep}}
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
