package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/proxy/usage"
)

// waitBody stands for the upstream client's body (h1's clientBody).
type waitBody struct {
	io.Reader
	waits, arms int
}

func (b *waitBody) Close() error        { return nil }
func (b *waitBody) WaitReadable() error { b.waits++; return nil }

// ArmReadable answers "read now" (the test reads on its own goroutine).
func (b *waitBody) ArmReadable(func()) bool { b.arms++; return false }

// The meter keeps a stream parkable: wherever the relay could wait for
// the upstream holding no buffer (parkableSource) without the meter, it
// still can with the meter's body in the way, and meterSource finds the
// same source the relay would. Without it the relay reads a metered
// stream through its small buffer: one write and flush more per burst.
func TestMeterKeepsStreamParkable(t *testing.T) {
	const stream = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"
	idle := func(rc io.ReadCloser) *idleBody {
		_, cancel := context.WithCancel(context.Background())
		return &idleBody{ReadCloser: rc, timer: time.NewTimer(time.Hour), timeout: time.Hour, cancel: cancel, d: &decision{}}
	}
	repl := scrub.NewReplacer(scrub.Forms([]byte("sk-secret-0123456789abcdef")), []byte("[REDACTED]"))
	for _, tc := range []struct {
		name     string
		body     func(w *waitBody) io.ReadCloser
		parkable bool
	}{
		{"client body", func(w *waitBody) io.ReadCloser { return w }, true},
		{"idle timer", func(w *waitBody) io.ReadCloser { return idle(w) }, true},
		{"scrubbed", func(w *waitBody) io.ReadCloser {
			return &scrubBody{Reader: scrub.NewReader(idle(w), repl, func(int) {}), closer: w, e: &echoes{}, r: repl, trailer: &http.Response{}}
		}, true},
		{"scrubbed other reader", func(w *waitBody) io.ReadCloser {
			return &scrubBody{Reader: strings.NewReader(stream), closer: w, e: &echoes{}, r: repl, trailer: &http.Response{}}
		}, false},
		{"no waiter", func(*waitBody) io.ReadCloser { return io.NopCloser(strings.NewReader(stream)) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &waitBody{Reader: strings.NewReader(stream)}
			body := tc.body(w)
			if got := parkableSource(body).wait != nil; got != tc.parkable {
				t.Fatalf("relay parks the unmetered body: %v, want %v", got, tc.parkable)
			}
			if src, _ := meterSource(body); (src != nil) != tc.parkable {
				t.Fatalf("meterSource found %v, the relay parks: %v", src, tc.parkable)
			}
			m, err := usage.New(usage.Config{Store: usage.NewMemStore()})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true}`))
			tk, err := m.Admit(context.Background(), usage.Target{Agent: "a", Rule: "r", Credential: "c", Dialect: usage.DialectOpenAI}, req)
			if err != nil || tk == nil {
				t.Fatal(tk, err)
			}
			d := &decision{ev: &event{ticket: tk}}
			req = req.WithContext(context.WithValue(context.Background(), decisionKey{}, d))
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: body, Request: req}
			(&Server{}).meterResponse(resp) // the observer chain's meter
			p := parkableSource(resp.Body)
			if (p.wait != nil) != tc.parkable {
				t.Fatalf("relay parks the metered body: %v, want %v", p.wait != nil, tc.parkable)
			}
			if p.wait != nil {
				if err := p.wait(); err != nil || w.waits != 1 {
					t.Fatalf("wait: %v, upstream waits %d, want 1", err, w.waits)
				}
				// and without a goroutine (stream.go): a metered stream detaches too
				if p.arm == nil {
					t.Fatal("the metered body cannot be waited for without a goroutine (no ArmReadable)")
				}
				if p.arm(func() {}) || w.arms != 1 {
					t.Fatalf("arm reached the upstream %d times, want 1", w.arms)
				}
			}
			got, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(got) != "data: [DONE]\n\n" { // the usage chunk airlock asked for is gone
				t.Fatalf("relayed %q", got)
			}
		})
	}
}
