package usage

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The fakes below answer like the public OpenAI and Anthropic APIs (shapes
// from their API references: chat.completion / chat.completion.chunk with
// stream_options.include_usage, the Responses API's response.* events,
// embeddings, and Anthropic's message / message_start / message_delta
// events). No real provider can be reached from the tests.

// fakeUsage is what a fake reports.
type fakeUsage struct {
	Prompt, Completion, Cached, Reasoning int64
	CacheWrite                            int64 // Anthropic
}

var usageA = fakeUsage{Prompt: 1234, Completion: 567, Cached: 1024, Reasoning: 256}

// fake is a loopback OpenAI + Anthropic API.
type fake struct {
	t      testing.TB
	srv    *httptest.Server
	usage  fakeUsage
	model  string
	chunks []string // content deltas of a streamed answer

	// hooks
	gate     chan struct{} // when set, every request waits for it to close
	between  func(i int)   // called after chunk i was flushed
	midError bool          // the stream ends with a provider error instead of usage
	hangAt   int           // >0: stop after this many chunks and wait for the client to leave
	noUsage  bool          // never report usage (a host that ignores include_usage)

	hits      atomic.Int64
	mu        sync.Mutex // guards lastBody
	lastBody  []byte
	userLeft  chan struct{}
	leaveOnce sync.Once
}

func newFake(t testing.TB) *fake {
	f := &fake{t: t, usage: usageA, model: "gpt-4o-2024-08-06", chunks: []string{"Hel", "lo", ", wor", "ld!"},
		userLeft: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) body() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastBody
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.lastBody = b
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	var req struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(b, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/chat/completions") && req.Stream:
		f.chatSSE(w, r, req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !f.noUsage)
	case strings.HasSuffix(path, "/chat/completions"):
		f.json(w, f.chatJSON())
	case strings.HasSuffix(path, "/responses") && req.Stream:
		f.responsesSSE(w, r)
	case strings.HasSuffix(path, "/responses"):
		f.json(w, f.responseObj("completed", true))
	case strings.HasSuffix(path, "/embeddings"):
		f.json(w, fmt.Sprintf(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,0.015797347]}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
			f.model, f.usage.Prompt, f.usage.Prompt))
	case strings.HasSuffix(path, "/messages") && req.Stream:
		f.messagesSSE(w, r)
	case strings.HasSuffix(path, "/messages"):
		f.json(w, f.messageJSON())
	default:
		http.NotFound(w, r)
	}
}

func (f *fake) json(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, s)
}

func (f *fake) chatJSON() string {
	u := f.usage
	return fmt.Sprintf(`{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`,
		f.model, strings.Join(f.chunks, ""), u.Prompt, u.Completion, u.Prompt+u.Completion, u.Cached, u.Reasoning)
}

func sseStart(w http.ResponseWriter) http.Flusher {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	fl.Flush()
	return fl
}

// chatSSE streams like OpenAI: with include_usage every chunk carries
// "usage":null and one last chunk with empty choices carries the usage.
func (f *fake) chatSSE(w http.ResponseWriter, r *http.Request, includeUsage bool) {
	fl := sseStart(w)
	tail := ""
	if includeUsage {
		tail = `,"usage":null`
	}
	chunk := func(delta, finish string) string {
		return fmt.Sprintf(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":%q,"system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]%s}`,
			f.model, delta, finish, tail)
	}
	send := func(data string) {
		_, _ = fmt.Fprintf(w, "data: %s\n\n", data)
		fl.Flush()
	}
	send(chunk(`{"role":"assistant","content":"","refusal":null}`, "null"))
	for i, c := range f.chunks {
		if f.hangAt > 0 && i == f.hangAt {
			<-r.Context().Done()
			f.leaveOnce.Do(func() { close(f.userLeft) })
			return
		}
		d, _ := json.Marshal(c)
		send(chunk(`{"content":`+string(d)+`}`, "null"))
		if f.between != nil {
			f.between(i)
		}
	}
	if f.midError {
		send(`{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`)
		return
	}
	send(chunk(`{}`, `"stop"`))
	if includeUsage {
		u := f.usage
		send(fmt.Sprintf(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":%q,"system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`,
			f.model, u.Prompt, u.Completion, u.Prompt+u.Completion, u.Cached, u.Reasoning))
	}
	send("[DONE]")
}

func (f *fake) responseObj(status string, withUsage bool) string {
	u := f.usage
	usage := "null"
	if withUsage {
		usage = fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}`,
			u.Prompt, u.Cached, u.Completion, u.Reasoning, u.Prompt+u.Completion)
	}
	return fmt.Sprintf(`{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","object":"response","created_at":1741476542,"status":%q,"error":null,"incomplete_details":null,"model":%q,"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":%q,"annotations":[]}]}],"parallel_tool_calls":true,"reasoning":{"effort":null,"summary":null},"store":true,"temperature":1.0,"usage":%s,"user":null,"metadata":{}}`,
		status, f.model, strings.Join(f.chunks, ""), usage)
}

func (f *fake) responsesSSE(w http.ResponseWriter, r *http.Request) {
	fl := sseStart(w)
	seq := 0
	send := func(typ, data string) {
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
		fl.Flush()
		seq++
	}
	send("response.created", fmt.Sprintf(`{"type":"response.created","sequence_number":%d,"response":%s}`, seq, f.responseObj("in_progress", false)))
	for _, c := range f.chunks {
		d, _ := json.Marshal(c)
		send("response.output_text.delta", fmt.Sprintf(`{"type":"response.output_text.delta","sequence_number":%d,"item_id":"msg_1","output_index":0,"content_index":0,"delta":%s}`, seq, d))
	}
	if f.midError {
		send("error", fmt.Sprintf(`{"type":"error","sequence_number":%d,"code":"server_error","message":"The server had an error","param":null}`, seq))
		return
	}
	send("response.completed", fmt.Sprintf(`{"type":"response.completed","sequence_number":%d,"response":%s}`, seq, f.responseObj("completed", true)))
}

func (f *fake) messageJSON() string {
	u := f.usage
	return fmt.Sprintf(`{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":%q}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
		f.model, strings.Join(f.chunks, ""), u.Prompt, u.CacheWrite, u.Cached, u.Completion)
}

func (f *fake) messagesSSE(w http.ResponseWriter, r *http.Request) {
	fl := sseStart(w)
	u := f.usage
	send := func(typ, data string) {
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
		fl.Flush()
	}
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":%q,"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
		f.model, u.Prompt, u.CacheWrite, u.Cached))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	send("ping", `{"type": "ping"}`)
	for _, c := range f.chunks {
		d, _ := json.Marshal(c)
		send("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%s}}`, d))
	}
	if f.midError {
		send("error", `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}`)
		return
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, u.Completion))
	send("message_stop", `{"type":"message_stop"}`)
}
