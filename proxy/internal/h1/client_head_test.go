package h1

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
)

// heads renders req with writeHead and with Request.Write.
func heads(t testing.TB, req *http.Request) (fast string, ok bool, std string, stdErr error) {
	t.Helper()
	var a, b bytes.Buffer
	bw := bufio.NewWriter(&a)
	ok = writeHead(bw, req)
	_ = bw.Flush()
	bw = bufio.NewWriter(&b)
	stdErr = req.Write(bw)
	_ = bw.Flush()
	return a.String(), ok, b.String(), stdErr
}

// writeHead writes what Request.Write writes, or leaves the request to it.
func TestWriteHead(t *testing.T) {
	trace := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteHeaderField: func(string, []string) {}})
	cases := []struct {
		name   string
		method string
		url    string
		host   string
		header http.Header
		body   bool
		ctx    context.Context
		fast   bool
	}{
		{"plain get", "GET", "https://api.example/v1/x?q=1", "", http.Header{"Authorization": {"Bearer t"}, "Accept": {"*/*"}}, false, nil, true},
		{"head", "HEAD", "https://api.example:8443/", "", nil, false, nil, true},
		{"default agent", "GET", "https://a.example/", "", http.Header{"X-B": {"2"}, "X-A": {"1", "3"}}, false, nil, true},
		{"blank agent", "GET", "https://a.example/", "", http.Header{"User-Agent": {""}}, false, nil, true},
		{"agent set", "GET", "https://a.example/", "", http.Header{"User-Agent": {"  curl/8 "}}, false, nil, true},
		{"agent empty list", "GET", "https://a.example/", "", http.Header{"User-Agent": {}}, false, nil, true},
		{"excluded fields", "GET", "https://a.example/", "", http.Header{"Host": {"evil"}, "Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}}, false, nil, true},
		{"lowercase key", "GET", "https://a.example/", "", http.Header{"user-agent": {"x"}, "x-low": {"y"}}, false, nil, true},
		{"invalid name dropped", "GET", "https://a.example/", "", http.Header{"Bad Name": {"v"}, "Ok": {"v"}}, false, nil, true},
		{"values trimmed", "GET", "https://a.example/", "", http.Header{"X": {" \tv \t", ""}}, false, nil, true},
		{"newline in value", "GET", "https://a.example/", "", http.Header{"X": {"a\r\nb"}}, false, nil, true},
		{"host field", "GET", "https://a.example/p", "b.example:1", nil, false, nil, true},
		{"escaped path", "GET", "https://a.example/a%20b/c", "", nil, false, nil, true},
		{"ipv6", "GET", "https://[::1]:8443/", "", nil, false, nil, true},
		{"ipv6 zone", "GET", "https://[fe80::1%25en0]:8443/", "", nil, false, nil, false},
		{"punycode", "GET", "https://bücher.example/", "", nil, false, nil, false},
		{"post", "POST", "https://a.example/", "", nil, false, nil, false},
		{"delete", "DELETE", "https://a.example/", "", nil, false, nil, false},
		{"body", "GET", "https://a.example/", "", nil, true, nil, false},
		{"trace", "GET", "https://a.example/", "", nil, false, trace, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body *strings.Reader
			req, err := http.NewRequest(tc.method, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body {
				body = strings.NewReader("abc")
				req, _ = http.NewRequest(tc.method, tc.url, body)
			}
			if tc.header != nil {
				req.Header = tc.header
			}
			req.Host = tc.host
			if tc.ctx != nil {
				req = req.WithContext(tc.ctx)
			}
			fast, ok, std, err := heads(t, req)
			if ok != tc.fast {
				t.Fatalf("writeHead took it: %v, want %v", ok, tc.fast)
			}
			if !ok {
				if fast != "" {
					t.Fatalf("writeHead declined but wrote %q", fast)
				}
				return
			}
			if err != nil || fast != std {
				t.Fatalf("writeHead wrote\n%q\nRequest.Write (err %v)\n%q", fast, err, std)
			}
		})
	}
}

// FuzzWriteHead: whatever writeHead takes, it writes as Request.Write.
func FuzzWriteHead(f *testing.F) {
	f.Add("GET", "/v1/x?q=1", "api.example:443", "Authorization", "Bearer t", "User-Agent", "ua")
	f.Add("HEAD", "/", "[::1]:80", "X", " a\r\nb ", "user-agent", "")
	f.Fuzz(func(t *testing.T, method, path, host, k1, v1, k2, v2 string) {
		u, err := url.Parse("https://" + host + path)
		if err != nil || u.Host == "" {
			return
		}
		req := &http.Request{Method: method, URL: u, Header: http.Header{k1: {v1}, k2: {v2, v1}}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		if validHead(req) != nil {
			return // RoundTrip refuses it before writing
		}
		fast, ok, std, err := heads(t, req)
		if ok && (err != nil || fast != std) {
			t.Fatalf("writeHead wrote\n%q\nRequest.Write (err %v)\n%q", fast, err, std)
		}
	})
}
