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

// benchMessagesStream is an Anthropic Messages stream as the API sends
// it: message_start, a text block of n content_block_delta events,
// message_delta with the output usage, message_stop.
func benchMessagesStream(n int) []byte {
	var b bytes.Buffer
	ev := func(name, data string) { fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", name, data) }
	ev("message_start", `{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}`)
	ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	ev("ping", `{"type": "ping"}`)
	for i := range n {
		ev("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"token %d "}}`, i))
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
	ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":503}}`)
	ev("message_stop", `{"type":"message_stop"}`)
	return b.Bytes()
}

// benchResponsesStream is an OpenAI Responses stream: response.created,
// n response.output_text.delta events, response.completed with the usage.
func benchResponsesStream(n int) []byte {
	var b bytes.Buffer
	ev := func(name, data string) { fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", name, data) }
	resp := func(status, output, usage string) string {
		return `{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"status":"` + status + `","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"gpt-4o-2024-08-06","output":[` + output + `],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":` + usage + `,"user":null,"metadata":{}}`
	}
	ev("response.created", `{"type":"response.created","sequence_number":0,"response":`+resp("in_progress", "", "null")+`}`)
	for i := range n {
		ev("response.output_text.delta", fmt.Sprintf(`{"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b","output_index":0,"content_index":0,"delta":"token %d "}`, i+1, i))
	}
	ev("response.completed", `{"type":"response.completed","sequence_number":`+fmt.Sprint(n+1)+`,"response":`+resp("completed", `{"type":"message","id":"msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b","status":"completed","role":"assistant","content":[{"type":"output_text","text":"token 0 token 1 ...","annotations":[]}]}`, `{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}`)+`}`)
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
// against relaying the raw body (off): chat completions (meter: the agent
// asked include_usage; strip: airlock asked and strips), Anthropic
// Messages and OpenAI Responses streams.
func BenchmarkObserverSSE(b *testing.B) {
	const n = 200
	m, _ := New(Config{Store: NewMemStore()})
	anthropic := openaiTarget
	anthropic.Rule, anthropic.Dialect = "anthropic", DialectAnthropic
	for _, mode := range []string{"off", "meter", "strip", "messages", "responses"} {
		b.Run(mode, func(b *testing.B) {
			src, ep, target := benchStream(n, mode != "off"), EndpointChat, openaiTarget
			switch mode {
			case "messages":
				src, ep, target = benchMessagesStream(n), EndpointMessages, anthropic
			case "responses":
				src, ep = benchResponsesStream(n), EndpointResponses
			}
			evs := splitEvents(src)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				body := io.NopCloser(&eventReader{evs: append([][]byte(nil), evs...)})
				var rc io.ReadCloser = body
				var tk *Ticket
				if mode != "off" {
					tk = &Ticket{m: m, conf: m.conf.Load(), target: target, id: "x",
						info: RequestInfo{Endpoint: ep, Rewritten: mode == "strip"}}
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
				if tk != nil && (tk.Result() == nil || tk.Result().Tokens.Input == 0 || tk.Result().Tokens.Output == 0) {
					b.Fatalf("%s: usage not counted: %+v", mode, tk.Result())
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*len(evs)), "cpu-ns/event")
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
// ask for usage (rewritten and stripped). meter-ns/op is the meter's part
// alone (no request or response built). With caches "cold", every request
// starts after a sweep of 2 MiB has pushed the meter's data out of L1 and
// L2, as a proxy's other connections do between two requests of one;
// "cold-events" sweeps before every read of the answer too, as the relay's
// system calls and the other streams do between two events of one. Those
// figures, not the "hot" ones, are near what the airlock binary pays
// (`airlock-bench meter`).
func BenchmarkMeterRequest(b *testing.B) {
	sweep := make([]byte, 2<<20) // twice L2 here: the meter's data stays in L3, as in a proxy
	evict := func() {
		for i := 0; i < len(sweep); i += 64 {
			sweep[i]++
		}
	}
	for _, caches := range []string{"hot", "cold", "cold-events"} {
		for _, window := range []string{"month", "24h"} {
			for _, kind := range []string{"chat", "sse"} {
				if caches == "cold-events" && kind == "chat" {
					continue // one read
				}
				b.Run(caches+"/"+window+"/"+kind, func(b *testing.B) {
					var before func()
					if caches != "hot" {
						before = evict
					}
					benchMeterRequest(b, window, kind, before, caches == "cold-events")
				})
			}
		}
	}
}

// sweptReader calls sweep, untimed (its time is added to swept), before
// every Read of r.
type sweptReader struct {
	r     io.Reader
	sweep func()
	swept *time.Duration
}

func (s sweptReader) Read(p []byte) (int, error) {
	t0 := time.Now()
	s.sweep()
	*s.swept += time.Since(t0)
	return s.r.Read(p)
}

// benchMeterRequest meters b.N requests of kind (chat, sse) under a budget
// of window, calling before (if not nil) ahead of each, untimed, and with
// perRead ahead of every read of the answer too.
func benchMeterRequest(b *testing.B, window, kind string, before func(), perRead bool) {
	const req = `{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
	mt, _ := NewMetrics(nil)
	m, err := New(Config{Store: NewMemStore(), Metrics: mt, Budgets: []Budget{{Name: "big", Rule: openaiTarget.Rule, Tokens: 1 << 50, Window: window}}})
	if err != nil {
		b.Fatal(err)
	}
	body, ct, resp := req, "application/json", benchChatAnswer
	var evs [][]byte
	if kind == "sse" {
		body, ct, evs = strings.Replace(req, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), "text/event-stream", splitEvents(benchStream(4, true))
	}
	buf := make([]byte, 32<<10)
	var spent time.Duration
	var ph [3]time.Duration
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
		var rd io.Reader = strings.NewReader(resp)
		if kind == "sse" {
			rd = &eventReader{evs: append([][]byte(nil), evs...)}
		}
		var swept time.Duration // of this request's reads
		if perRead {
			rd = sweptReader{rd, before, &swept}
		}
		res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(rd)}
		if before != nil {
			before()
		}
		t0 := time.Now()
		tk, err := m.Admit(r.Context(), openaiTarget, r)
		if err != nil || tk == nil {
			b.Fatal(tk, err)
		}
		t1 := time.Now()
		tk.Wrap(res)
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		t2 := time.Now()
		res.Body.Close()
		t3 := time.Now()
		spent += t3.Sub(t0) - swept
		ph[0] += t1.Sub(t0)
		ph[1] += t2.Sub(t1) - swept
		ph[2] += t3.Sub(t2)
		if tk.Result().Outcome != OutcomeOK {
			b.Fatal(tk.Result())
		}
	}
	b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "meter-ns/op")
	b.ReportMetric(float64(ph[0].Nanoseconds())/float64(b.N), "admit-ns/op")
	b.ReportMetric(float64(ph[1].Nanoseconds())/float64(b.N), "read-ns/op")
	b.ReportMetric(float64(ph[2].Nanoseconds())/float64(b.N), "close-ns/op")
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

// BenchmarkInspectLargeRequest: reading a streamed chat request with a
// 100 KiB prompt (agents send long contexts), its fields walked and
// include_usage added in the body's own buffer.
func BenchmarkInspectLargeRequest(b *testing.B) {
	msg := strings.Repeat(`{"role":"user","content":"`+strings.Repeat(`The quick brown fox jumps over the lazy dog. \n`, 40)+`"},`, 55)
	body := `{"model":"gpt-4o","max_tokens":256,"stream":true,"messages":[` + msg + `{"role":"user","content":"hi"}]}`
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
		var info RequestInfo
		if err := inspectRequest(r, EndpointChat, 0, &info, nil); err != nil || !info.Rewritten || info.MaxOutput != 256 {
			b.Fatal(err, info)
		}
	}
}

// BenchmarkInspectSmallRequest: a typical small streaming request (the
// one airlock-bench meter sends), rewritten for include_usage; the
// request itself is reused, so only the meter's reading and edit count.
func BenchmarkInspectSmallRequest(b *testing.B) {
	const body = `{"model":"gpt-4o","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
	r, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", nil)
	var src strings.Reader
	var rb bytesBody
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		r.Body, r.ContentLength = io.NopCloser(&src), int64(len(body))
		var info RequestInfo
		if err := inspectRequest(r, EndpointChat, 0, &info, &rb); err != nil || !info.Rewritten || info.MaxOutput != 256 {
			b.Fatal(err, info)
		}
	}
}
