package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// llmFake is a loopback TLS fake of the OpenAI Chat Completions API or of
// the Anthropic Messages API, written from their public API references
// (chat.completion, chat.completion.chunk with stream_options.include_usage
// and [DONE]; message, message_start / message_delta / message_stop). No
// real provider can be reached from the tests. Its usage figures are the
// truth every counted figure is compared with.
type llmFake struct {
	*httptest.Server
	model  string
	chunks []string
	// usage reported: prompt (input), completion (output), cached input,
	// reasoning (OpenAI) or cache writes (Anthropic)
	prompt, completion, cached, extra int64

	gate     chan struct{} // when set, every request waits for it to close
	hits     atomic.Int64
	mu       sync.Mutex // guards bodies
	bodies   [][]byte   // request bodies as received
	inflight atomic.Int64
}

// newOpenAIFake starts an OpenAI fake; tune (optional) adjusts it first.
func newOpenAIFake(t *testing.T, tune func(*llmFake)) *llmFake {
	f := &llmFake{model: "gpt-4o-2024-08-06", chunks: []string{"Hel", "lo", ", wor", "ld!"},
		prompt: 1234, completion: 567, cached: 1024, extra: 256}
	return f.start(t, f.serveOpenAI, tune)
}

// newAnthropicFake starts an Anthropic fake.
func newAnthropicFake(t *testing.T) *llmFake {
	f := &llmFake{model: "claude-sonnet-4-5-20250929", chunks: []string{"Bon", "jour", "!"},
		prompt: 2095, completion: 503, cached: 1800, extra: 248}
	return f.start(t, f.serveAnthropic, nil)
}

func (f *llmFake) start(t *testing.T, h http.HandlerFunc, tune func(*llmFake)) *llmFake {
	if tune != nil {
		tune(f)
	}
	f.Server = httptest.NewTLSServer(h)
	t.Cleanup(f.Close)
	return f
}

// direct is a client that reaches the fake without airlock (the reference).
func (f *llmFake) direct() *http.Client { return f.Client() }

func (f *llmFake) hostPort() string { return strings.TrimPrefix(f.URL, "https://") }

func (f *llmFake) lastBody() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

// enter records a request and waits at the gate; it returns the request.
func (f *llmFake) enter(w http.ResponseWriter, r *http.Request) (req llmRequest, ok bool) {
	f.hits.Add(1)
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-r.Context().Done():
			return req, false
		}
	}
	if err := json.Unmarshal(b, &req); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`)
		return req, false
	}
	return req, true
}

type llmRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (f *llmFake) serveOpenAI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	req, ok := f.enter(w, r)
	if !ok {
		return
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`,
			f.model, strings.Join(f.chunks, ""), f.prompt, f.completion, f.prompt+f.completion, f.cached, f.extra)
		return
	}
	include := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	fl := sseHead(w)
	tail := ""
	if include {
		tail = `,"usage":null`
	}
	send := func(data string) { _, _ = fmt.Fprintf(w, "data: %s\n\n", data); fl.Flush() }
	chunk := func(delta, finish string) string {
		return fmt.Sprintf(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":%q,"system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]%s}`,
			f.model, delta, finish, tail)
	}
	send(chunk(`{"role":"assistant","content":"","refusal":null}`, "null"))
	for _, c := range f.chunks {
		d, _ := json.Marshal(c)
		send(chunk(`{"content":`+string(d)+`}`, "null"))
	}
	send(chunk(`{}`, `"stop"`))
	if include {
		send(fmt.Sprintf(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":%q,"system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`,
			f.model, f.prompt, f.completion, f.prompt+f.completion, f.cached, f.extra))
	}
	send("[DONE]")
}

func (f *llmFake) serveAnthropic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/messages" {
		http.NotFound(w, r)
		return
	}
	req, ok := f.enter(w, r)
	if !ok {
		return
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":%q}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
			f.model, strings.Join(f.chunks, ""), f.prompt, f.extra, f.cached, f.completion)
		return
	}
	fl := sseHead(w)
	send := func(typ, data string) { _, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data); fl.Flush() }
	send("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":%q,"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`,
		f.model, f.prompt, f.extra, f.cached))
	send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	send("ping", `{"type": "ping"}`)
	for _, c := range f.chunks {
		d, _ := json.Marshal(c)
		send("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%s}}`, d))
	}
	send("content_block_stop", `{"type":"content_block_stop","index":0}`)
	send("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, f.completion))
	send("message_stop", `{"type":"message_stop"}`)
}

func sseHead(w http.ResponseWriter) http.Flusher {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fl := w.(http.Flusher)
	fl.Flush()
	return fl
}

// post sends body to url with c and returns status, headers and body.
func post(t *testing.T, c *http.Client, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// execOutput runs a command and returns its stdout.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

// execNode prepares `node -e script` as an agent of e: through the proxy
// (HTTPS_PROXY with the agent's credentials, nothing exempt), trusting
// airlock's CA, with BASE the API's URL.
func execNode(t *testing.T, script, mods string, e *env, agent *url.URL, base string) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	cmd := exec.Command("node", "-e", script)
	proxy := e.proxyURL(agent).String()
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "BASE="+base, "HTTPS_PROXY="+proxy, "HTTP_PROXY="+proxy,
		"https_proxy="+proxy, "http_proxy="+proxy, "NO_PROXY=", "no_proxy=", "NODE_EXTRA_CA_CERTS="+e.caFile())
	return cmd
}
