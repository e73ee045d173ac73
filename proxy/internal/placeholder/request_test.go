package placeholder

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// seenRequest is what the upstream received.
type seenRequest struct {
	path, query, header, body string
	length                    int64
	chunked                   bool
	readErr                   error
}

// forwarder is a minimal stand-in for the proxy's wiring: it judges
// nothing itself, calls Request with the allowed set of the "rule" (nil =
// no substitution) and forwards to a real upstream over loopback, answering
// 403 PLACEHOLDER_NOT_ALLOWED when Request or the streamed body refuses.
type forwarder struct {
	t        *testing.T
	upstream *httptest.Server
	mu       sync.Mutex // guards seen
	seen     []seenRequest
	proxy    *httptest.Server
}

func newForwarder(t *testing.T, allowed Allowed, limit int64) *forwarder {
	f := &forwarder{t: t}
	f.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		f.mu.Lock()
		f.seen = append(f.seen, seenRequest{path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Get("X-Api-Key"),
			body: string(b), length: r.ContentLength, chunked: len(r.TransferEncoding) > 0, readErr: err})
		f.mu.Unlock()
	}))
	t.Cleanup(f.upstream.Close)
	target, _ := url.Parse(f.upstream.URL)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	f.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
		a, err := Request(out, allowed, limit)
		if err == nil {
			var resp *http.Response
			resp, err = tr.RoundTrip(out)
			if err == nil {
				resp.Body.Close()
				w.WriteHeader(resp.StatusCode)
				return
			}
			if be := a.BodyErr(); be != nil {
				err = be
			}
		}
		code, status := "UPSTREAM_ERROR", http.StatusBadGateway
		switch {
		case errors.Is(err, ErrNotAllowed), errors.Is(err, ErrEncodedBody), errors.Is(err, ErrUnsafeHeaderValue):
			code, status = "PLACEHOLDER_NOT_ALLOWED", http.StatusForbidden
		}
		w.Header().Set("X-Airlock-Error", code)
		w.WriteHeader(status)
	}))
	t.Cleanup(f.proxy.Close)
	return f
}

func (f *forwarder) send(method, path string, h http.Header, body io.Reader, length int64) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.proxy.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if length >= -1 {
		req.ContentLength = length
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (f *forwarder) seenAll() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

const reqSecret = "s3cr3t/with?odd&chars"

func TestRequestSubstitutes(t *testing.T) {
	f := newForwarder(t, Only(tgPath, []byte(reqSecret)), 64)
	ph := "{{airlock:" + tgPath + "}}"
	body := `{"token":"` + ph + `"}`
	resp := f.send("POST", "/bot"+ph+"/sendMessage?sig="+url.QueryEscape(ph),
		http.Header{"X-Api-Key": {"k " + ph}, "Content-Type": {"application/json"}}, strings.NewReader(body), int64(len(body)))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
	s := f.seenAll()[0]
	want := `{"token":"` + reqSecret + `"}`
	if s.path != "/bot"+reqSecret+"/sendMessage" || s.header != "k "+reqSecret || s.body != want || s.length != int64(len(want)) || s.chunked {
		t.Fatalf("upstream saw %+v", s)
	}
	if q, _ := url.ParseQuery(s.query); q.Get("sig") != reqSecret {
		t.Fatalf("query %q", s.query)
	}
}

// TestRequestStreamsLargeBody: over the buffer limit the body goes chunked,
// substituted, split wherever the transport reads it.
func TestRequestStreamsLargeBody(t *testing.T) {
	f := newForwarder(t, Only(tgPath, []byte(reqSecret)), 64)
	ph := "{{airlock:" + tgPath + "}}"
	body := strings.Repeat(`{"a":"`+ph+`"},`, 5000)
	resp := f.send("POST", "/upload", http.Header{"Content-Type": {"text/plain"}}, strings.NewReader(body), int64(len(body)))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := f.seenAll()[0]
	if want := strings.ReplaceAll(body, ph, reqSecret); s.body != want || !s.chunked || s.length != -1 {
		t.Fatalf("upstream saw %d bytes chunked=%v length=%d", len(s.body), s.chunked, s.length)
	}
}

// TestRequestRefuses plays the agent sending placeholders a rule does not
// bind: 403 PLACEHOLDER_NOT_ALLOWED, and the upstream sees nothing (or,
// for a streamed body, an aborted request without the placeholder).
func TestRequestRefuses(t *testing.T) {
	other := "{{airlock:other/key}}"
	mine := "{{airlock:" + tgPath + "}}"
	cases := map[string]struct {
		allowed Allowed
		path    string
		header  string
		body    string
	}{
		"path, rule without placeholders":   {nil, "/bot" + mine + "/x", "", ""},
		"query, other credential":           {Only(tgPath, []byte(reqSecret)), "/x?k=" + url.QueryEscape(other), "", ""},
		"header, rule without placeholders": {nil, "/x", "Bearer " + mine, ""},
		"small body, other credential":      {Only(tgPath, []byte(reqSecret)), "/x", "", `{"k":"` + other + `"}`},
		"small body, no substitution":       {nil, "/x", "", `{"k":"` + mine + `"}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			f := newForwarder(t, tc.allowed, 1<<10)
			h := http.Header{}
			if tc.header != "" {
				h.Set("X-Api-Key", tc.header)
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp := f.send("POST", tc.path, h, body, -2)
			if resp.StatusCode != 403 || resp.Header.Get("X-Airlock-Error") != "PLACEHOLDER_NOT_ALLOWED" {
				t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
			}
			if n := len(f.seenAll()); n != 0 {
				t.Fatalf("upstream got %d requests", n)
			}
		})
	}
	t.Run("large streamed body", func(t *testing.T) {
		f := newForwarder(t, Only(tgPath, []byte(reqSecret)), 64)
		body := strings.Repeat("x", 100<<10) + other + "tail"
		resp := f.send("POST", "/x", nil, strings.NewReader(body), int64(len(body)))
		if resp.StatusCode != 403 || resp.Header.Get("X-Airlock-Error") != "PLACEHOLDER_NOT_ALLOWED" {
			t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
		}
		for _, s := range f.seenAll() {
			if strings.Contains(s.body, "{{airlock:") || strings.Contains(s.body, "tail") || s.readErr == nil {
				t.Fatalf("upstream read %d bytes (err %v) holding the placeholder or completing", len(s.body), s.readErr)
			}
		}
	})
}

func TestRequestEncodedBody(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"k":"{{airlock:` + tgPath + `}}"}`))
	zw.Close()
	h := http.Header{"Content-Encoding": {"gzip"}}

	f := newForwarder(t, Only(tgPath, []byte(reqSecret)), 1<<10)
	if resp := f.send("POST", "/x", h, bytes.NewReader(gz.Bytes()), int64(gz.Len())); resp.StatusCode != 403 {
		t.Fatalf("substitution in a gzip body: status %d", resp.StatusCode)
	}
	if len(f.seenAll()) != 0 {
		t.Fatal("upstream got the gzip body")
	}

	f = newForwarder(t, nil, 1<<10)
	if resp := f.send("POST", "/x", h, bytes.NewReader(gz.Bytes()), int64(gz.Len())); resp.StatusCode != 200 {
		t.Fatalf("gzip body on a rule without placeholders: status %d", resp.StatusCode)
	}
	if s := f.seenAll(); len(s) != 1 || s[0].body != gz.String() || s[0].length != int64(gz.Len()) {
		t.Fatal("gzip body not forwarded as is")
	}
}

// TestRequestDetectOnlyKeepsFraming: on a rule without placeholders a large
// body keeps its Content-Length.
func TestRequestDetectOnlyKeepsFraming(t *testing.T) {
	f := newForwarder(t, nil, 64)
	body := strings.Repeat("{x}", 10000)
	if resp := f.send("PUT", "/x", nil, strings.NewReader(body), int64(len(body))); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s := f.seenAll()[0]; s.body != body || s.length != int64(len(body)) || s.chunked {
		t.Fatalf("length %d chunked %v", s.length, s.chunked)
	}
}
