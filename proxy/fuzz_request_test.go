package proxy

import (
	"bytes"
	"encoding/base64"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

const fuzzToken = "fuzz-token-1234"

// fuzzServer builds an in-process Server over a real vault (FastKDF, in a
// temp dir) holding testSecret, with rules sending it to a plain-http
// upstream on loopback that echoes every request header and the body back:
// whatever raw bytes an agent sends, the secret must not come back.
func fuzzServer(f *testing.F) *Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range r.Header {
			w.Header()[k] = vs
			for _, v := range vs {
				_, _ = io.WriteString(w, k+": "+v+"\n")
			}
		}
		_, _ = io.WriteString(w, r.URL.String()+"\n")
		_, _ = io.Copy(w, io.LimitReader(r.Body, 1<<16))
	}))
	f.Cleanup(up.Close)
	upHost := strings.TrimPrefix(up.URL, "http://")
	s, _, _ := inprocServer(f, "test/key", testSecret, fuzzToken, `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: bearer
    host: "`+upHost+`"
    paths: ["/b/**"]
    credential: test/key
    insecure_http: true
  - name: query
    host: "`+upHost+`"
    paths: ["/q/**"]
    credential: test/key
    insecure_http: true
    inject: {type: query, param: key}
  - name: open
    host: "`+upHost+`"
`, Config{Log: zap.NewNop(), ReadHeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	return s
}

// FuzzProxyRequest drives raw bytes into the listener's dispatch over
// net.Pipe: no panic, and no form of the secret in what comes back.
func FuzzProxyRequest(f *testing.F) {
	s := fuzzServer(f)
	auth := "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bot:"+fuzzToken)) + "\r\n"
	host := "" // filled from the policy's first rule
	if rules := s.Policy().Rules; len(rules) > 0 {
		host = rules[0].Host
		if rules[0].Port != 0 {
			host += ":" + itoa(rules[0].Port)
		}
	}
	for _, seed := range []string{
		"GET http://" + host + "/b/echo HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\n",
		"GET http://" + host + "/q/echo?key=x&a=1 HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Accept-Encoding: gzip\r\n\r\n",
		"POST http://" + host + "/b/x HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST http://" + host + "/b/x HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET http://" + host + "/b/y HTTP/1.1\r\n" + auth + "\r\n",
		"GET http://" + host + "/b/loop HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Via: 1.1 airlock\r\n\r\n",
		"CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\nGET /b/x HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
		// Inside a plain-http tunnel: the lean loop (inner.go).
		"CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\nPOST /b/x HTTP/1.1\r\nHost: " + host + "\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\nGET /b/x HTTP/1.0\r\nHost: " + host + "\r\n\r\nGET /q/y HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
		"CONNECT " + host + " HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\nGET /b/ws HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
		"\x00\x00\x00\x05hello",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	forms := scrub.Forms([]byte(testSecret))
	f.Fuzz(func(t *testing.T, raw []byte) {
		client, server := net.Pipe()
		go s.dispatch(server)
		_ = client.SetDeadline(time.Now().Add(2 * time.Second))
		go func() { _, _ = client.Write(raw) }()
		out, _ := io.ReadAll(client)
		_ = client.Close()
		for _, form := range forms {
			if bytes.Contains(out, form) {
				t.Fatalf("response contains a form of the secret:\n%s", out)
			}
		}
	})
}
