package placeholder

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// sniffAll reads body through a sniffBody in reads of step bytes.
func sniffAll(body string, step int) (string, error) {
	sb := &sniffBody{src: io.NopCloser(iotest.HalfReader(strings.NewReader(body)))}
	var out bytes.Buffer
	buf := make([]byte, step)
	for {
		n, err := sb.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			return out.String(), nil
		}
		if err != nil {
			return out.String(), err
		}
	}
}

func TestSniffBody(t *testing.T) {
	const ph = "{{airlock:telegram/bot-token}}"
	cases := map[string]struct {
		body   string
		refuse bool
	}{
		"plain":                 {body: strings.Repeat("hello world ", 5000)},
		"braces":                {body: `{"a":{"b":{{}}}} {{air {{airlock {{airlock:}} {{airlock:x y}}`},
		"partial prefix at end": {body: "abc{{airl"},
		"placeholder":           {body: `{"token":"` + ph + `"}`, refuse: true},
		"placeholder first":     {body: ph, refuse: true},
		"placeholder late":      {body: strings.Repeat("x", 70000) + ph, refuse: true},
		"after a near miss":     {body: "{{airlock:bad path}} then " + ph, refuse: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, step := range []int{1, 3, 19, 20, 4096, 64 << 10} {
				out, err := sniffAll(tc.body, step)
				if tc.refuse {
					if !errors.Is(err, ErrNotAllowed) {
						t.Fatalf("step %d: err %v", step, err)
					}
					if strings.Contains(out, "{{airlock:telegram") {
						t.Fatalf("step %d: placeholder passed", step)
					}
					continue
				}
				if err != nil || out != tc.body {
					t.Fatalf("step %d: err %v, changed %v", step, err, out != tc.body)
				}
			}
		})
	}
}

// FuzzSniffBody checks sniffBody against a naive reference: refuse iff
// the whole body holds a well-formed placeholder; otherwise the bytes are
// unchanged; never a placeholder passed.
func FuzzSniffBody(f *testing.F) {
	f.Add([]byte(`{"t":"{{airlock:a/b}}"}`), uint8(3))
	f.Add([]byte("{{airl{{airlock:x}}"), uint8(1))
	f.Add([]byte("no placeholder {{ here"), uint8(7))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		out, err := sniffAll(string(body), int(step)+1)
		want := len(Find(string(body))) > 0
		if want != (err != nil) {
			t.Fatalf("refused=%v (%v), reference %v", err != nil, err, want)
		}
		if err == nil && out != string(body) {
			t.Fatal("bytes changed")
		}
		if err != nil && len(Find(out)) > 0 {
			t.Fatal("a placeholder passed")
		}
	})
}

// BenchmarkPlaceholderSniff: what detection costs a body on a rule that
// binds no placeholder: a plain copy, sniffBody (streamed bodies), the
// package's detecting Rewriter, and the whole-body check of small bodies.
func BenchmarkPlaceholderSniff(b *testing.B) {
	body := bytes.Repeat([]byte(`{"role":"user","content":"lorem ipsum {dolor} sit amet"},`), 1<<20/56)
	small := body[:16<<10]
	buf := make([]byte, 32<<10)
	run := func(name string, data []byte, wrap func(io.Reader) io.Reader) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := io.CopyBuffer(io.Discard, wrap(bytes.NewReader(data)), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	onlyReader := func(r io.Reader) io.Reader { return struct{ io.Reader }{r} }
	run("copy/1MiB", body, onlyReader)
	run("sniffBody/1MiB", body, func(r io.Reader) io.Reader { return &sniffBody{src: io.NopCloser(r)} })
	run("rewriter/1MiB", body, func(r io.Reader) io.Reader { return NewRewriter(r, None, nil) })
	run("whole/16KiB", small, func(r io.Reader) io.Reader {
		req := httptestRequest(r, int64(len(small)))
		if _, err := Sniff(req); err != nil {
			b.Fatal(err)
		}
		return req.Body
	})
	run("request-detect/16KiB", small, func(r io.Reader) io.Reader {
		req := httptestRequest(r, int64(len(small)))
		if _, err := Request(req, nil, DefaultBufferLimit); err != nil {
			b.Fatal(err)
		}
		return req.Body
	})
}

func httptestRequest(body io.Reader, n int64) *http.Request {
	req, _ := http.NewRequest("POST", "https://api.example/x", io.NopCloser(body))
	req.ContentLength = n
	return req
}

func TestHeadMayHold(t *testing.T) {
	for target, want := range map[string]bool{
		"/v1/chat/completions":                 false,
		"/v1/x?a=b&c=d":                        false,
		"/bot%7B%7Bairlock:a%2Fb%7D%7D/send":   true,
		"/bot%7B%7B%61irlock:a%2Fb%7D%7D/send": true,
		"/x?t={{airlock:a/b}}":                 true,
		"/x?t=%7B%7B%61%69rlock%3Aa%2Fb%7D%7D": true,
	} {
		req, err := http.NewRequest("GET", "https://h.example"+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := HeadMayHold(req); got != want {
			t.Errorf("%s: %v, want %v", target, got, want)
		}
		if !want {
			req.Header.Set("X-Token", "Bearer {{airlock:a/b}}")
			if !HeadMayHold(req) {
				t.Errorf("%s: header placeholder missed", target)
			}
		}
	}
}
