package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/proxy/state"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

const testSecret = "sk-live/4f0c+2a77=e1d?94b&x"

func testReplacer(secret string) *scrub.Replacer {
	return scrub.NewReplacer(scrub.Forms([]byte(secret)), []byte("[REDACTED:p]"))
}

func TestSecretForms(t *testing.T) {
	forms := scrub.Forms([]byte(testSecret))
	has := func(f string) bool {
		return bytes.Contains(bytes.Join(forms, []byte{0}), []byte(f))
	}
	for name, f := range map[string]string{
		"raw":           testSecret,
		"base64 std":    base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"base64 raw":    base64.RawStdEncoding.EncodeToString([]byte(testSecret)),
		"base64 url":    base64.URLEncoding.EncodeToString([]byte(testSecret)),
		"base64 rawurl": base64.RawURLEncoding.EncodeToString([]byte(testSecret)),
		"query escape":  url.QueryEscape(testSecret),
		"path escape":   url.PathEscape(testSecret),
	} {
		if !has(f) {
			t.Errorf("%s form %q missing", name, f)
		}
	}
	if got := scrub.Forms([]byte("abc")); len(got) != 0 {
		t.Errorf("short secret: %d forms, want none", len(got))
	}
}

// A secret inside a longer base64 payload (e.g. a JSON blob an upstream
// base64-encodes) is caught at every alignment.
func TestScrubEmbeddedBase64(t *testing.T) {
	r := testReplacer(testSecret)
	for pre := 0; pre < 6; pre++ {
		for post := 0; post < 4; post++ {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				payload := strings.Repeat("{", pre) + testSecret + strings.Repeat("}", post)
				b64 := enc.EncodeToString([]byte(payload))
				out, n := r.ReplaceString(b64)
				if n == 0 {
					t.Errorf("pre %d post %d: not caught in %q", pre, post, b64)
				}
				if strings.Contains(out, testSecret) {
					t.Errorf("pre %d post %d: secret left", pre, post)
				}
			}
		}
	}
}

// twoReads returns a then b from two Read calls.
type chunks struct{ parts [][]byte }

func (c *chunks) Read(p []byte) (int, error) {
	for len(c.parts) > 0 && len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	return n, nil
}

func TestScrubSplitAtEveryOffset(t *testing.T) {
	r := testReplacer(testSecret)
	for name, form := range map[string]string{
		"raw":    testSecret,
		"base64": base64.StdEncoding.EncodeToString([]byte(testSecret)),
		"query":  url.QueryEscape(testSecret),
	} {
		body := `{"echo":"` + form + `","tail":"` + form + `"}`
		want := `{"echo":"[REDACTED:p]","tail":"[REDACTED:p]"}`
		for i := 0; i <= len(body); i++ {
			echoes := 0
			sr := scrub.NewReader(&chunks{parts: [][]byte{[]byte(body[:i]), []byte(body[i:])}}, r, func(n int) { echoes += n })
			got, err := io.ReadAll(sr)
			if err != nil || string(got) != want || echoes != 2 {
				t.Fatalf("%s split at %d: %q, %d echoes, %v", name, i, got, echoes, err)
			}
		}
	}
}

// Bytes that cannot begin the secret are handed over at once: an SSE event
// arrives without waiting for the next one.
func TestScrubStreamsImmediately(t *testing.T) {
	pr, pw := io.Pipe()
	sr := scrub.NewReader(pr, testReplacer(testSecret), nil)
	go func() { _, _ = io.WriteString(pw, "data: one\n\n") }()
	buf := make([]byte, 100)
	done := make(chan string, 1)
	go func() {
		n, _ := sr.Read(buf)
		done <- string(buf[:n])
	}()
	select {
	case got := <-done:
		if got != "data: one\n\n" {
			t.Errorf("first read %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first event held back")
	}
	pw.Close()
}

// A prefix of the secret is held until the next read decides it.
func TestScrubHoldsOnlyPossiblePrefix(t *testing.T) {
	r := testReplacer(testSecret)
	out, used, _ := r.Scan(nil, []byte("hello "+testSecret[:5]), false)
	if string(out) != "hello " || used != len("hello ") {
		t.Errorf("scan = %q, used %d", out, used)
	}
}

func TestScrubBrokenStreamDropsTail(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("x"+testSecret[:8]), errReader{boom})
	got, err := io.ReadAll(scrub.NewReader(src, testReplacer(testSecret), nil))
	if !errors.Is(err, boom) || string(got) != "x" {
		t.Errorf("got %q, %v", got, err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func testServer() *Server {
	return &Server{log: zap.NewNop(), metrics: NewMetrics(), state: state.NewMemory()}
}

func scrubbedResponse(t *testing.T, s *Server, method string, hdr http.Header, body []byte) (*http.Response, error) {
	t.Helper()
	d := &decision{agent: "bot", host: "api.example", ev: &event{},
		rule: &policy.Rule{Name: "r1", Inject: policy.Inject{Type: policy.InjectBearer}},
		cred: &vault.Credential{Path: "test/key", Value: vault.NewSecret([]byte(testSecret))}}
	req, _ := http.NewRequestWithContext(context.WithValue(context.Background(), decisionKey{}, d), method, "https://api.example/", nil)
	resp := &http.Response{StatusCode: 200, Header: hdr, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}
	hdr.Set("Content-Length", "1")
	return resp, s.scrubResponse(resp)
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return b.Bytes()
}

func TestScrubResponse(t *testing.T) {
	plain := "who: " + testSecret
	cases := map[string]struct {
		enc      string
		body     []byte
		wantErr  bool
		wantBody string
	}{
		"identity": {body: []byte(plain), wantBody: "who: [REDACTED:test/key]"},
		"gzip":     {enc: "gzip", body: gz(plain), wantBody: "who: [REDACTED:test/key]"},
		"brotli":   {enc: "br", body: []byte("\x1b\x00"), wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := testServer()
			hdr := http.Header{"X-Echo": {"Bearer " + testSecret}}
			if tc.enc != "" {
				hdr.Set("Content-Encoding", tc.enc)
			}
			resp, err := scrubbedResponse(t, s, "GET", hdr, tc.body)
			if tc.wantErr {
				var e *Error
				if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != CodeUpstreamError {
					t.Fatalf("err = %v, want 502 UPSTREAM_ERROR", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != tc.wantBody {
				t.Errorf("body %q", got)
			}
			if h := resp.Header.Get("X-Echo"); h != "Bearer [REDACTED:test/key]" {
				t.Errorf("header %q", h)
			}
			if resp.Header.Get("Content-Length") != "" || resp.ContentLength != -1 || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("length/encoding headers left: %v %d", resp.Header, resp.ContentLength)
			}
			if n := testutil.ToFloat64(s.metrics.SecretEchoes.WithLabelValues("test/key")); n != 2 {
				t.Errorf("echo counter = %v, want 2", n)
			}
		})
	}
}

func TestScrubResponseHeadKeepsLength(t *testing.T) {
	resp, err := scrubbedResponse(t, testServer(), "HEAD", http.Header{}, nil)
	if err != nil || resp.Header.Get("Content-Length") != "1" {
		t.Errorf("HEAD: %v, %v", resp.Header, err)
	}
}

func BenchmarkScrubReader(b *testing.B) {
	body := bytes.Repeat([]byte("data: {\"token\":\"sk-abc\", \"text\":\"lorem ipsum dolor sit amet\"}\n\n"), 16<<10)
	r := testReplacer(testSecret)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_, _ = io.Copy(io.Discard, scrub.NewReader(bytes.NewReader(body), r, nil))
	}
}
