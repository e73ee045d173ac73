package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/airlock/airlock/certs"
)

// smallBody is the 181-byte JSON answer of /small, the size of a typical
// small API response (a model list entry, a usage record).
var smallBody = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-1","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"total":3}}` + "\n")

const mib = 1 << 20

// upstream is the HTTPS API every target talks to: HTTP/1.1 with
// keep-alive on one port of several loopback addresses (127.0.0.1 for the
// load, 127.0.0.2.. for never-seen hosts).
type upstream struct {
	port   int
	hosts  []string // "127.0.0.X:port"; hosts[0] is the load target
	caFile string   // PEM of the CA that signed its leaves
	srv    *http.Server
	ls     []net.Listener
}

// startUpstream listens on 127.0.0.1 and extra more loopback addresses.
// Linux routes all of 127.0.0.0/8 to lo, so each address is a distinct
// host to a proxy (its own leaf, its own upstream connection).
func startUpstream(dir string, extra int) (*upstream, error) {
	ca, err := certs.NewCA("airlock-bench upstream", time.Now())
	if err != nil {
		return nil, err
	}
	u := &upstream{caFile: filepath.Join(dir, "upstream-ca.pem")}
	if err := os.WriteFile(u.caFile, ca.CertPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write upstream CA: %w", err)
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		// Clients dial IP literals and send no SNI: pick the leaf by the
		// local address the connection arrived on.
		GetCertificate: leafByLocalAddr(ca),
	}
	u.srv = &http.Server{
		Handler:           upstreamMux(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
	}
	for i := 0; i <= extra; i++ {
		addr := "127.0.0.1:0"
		if i > 0 {
			addr = net.JoinHostPort(loopbackIP(i), strconv.Itoa(u.port))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			u.close()
			return nil, fmt.Errorf("upstream listen %s (Linux routes 127.0.0.0/8 to lo; other systems may need --new-hosts 0): %w", addr, err)
		}
		if i == 0 {
			u.port = l.Addr().(*net.TCPAddr).Port
		}
		u.ls = append(u.ls, l)
		u.hosts = append(u.hosts, l.Addr().String())
		go func() { _ = u.srv.Serve(tls.NewListener(l, tlsConf)) }()
	}
	return u, nil
}

// loopbackIP is the i-th loopback address after 127.0.0.1.
func loopbackIP(i int) string {
	return fmt.Sprintf("127.0.%d.%d", i/250, i%250+1)
}

func (u *upstream) close() {
	if u.srv != nil {
		_ = u.srv.Close()
	}
	for _, l := range u.ls {
		_ = l.Close()
	}
}

func leafByLocalAddr(ca *certs.CA) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	var mu sync.Mutex // guards leaves
	leaves := map[string]*tls.Certificate{}
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		host, _, err := net.SplitHostPort(hello.Conn.LocalAddr().String())
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if c, ok := leaves[host]; ok {
			return c, nil
		}
		c, err := ca.Mint(host, time.Now())
		if err != nil {
			return nil, err
		}
		leaves[host] = c
		return c, nil
	}
}

// upstreamMux answers /v1/small (181 bytes of JSON), /v1/sse (two events
// 5 ms apart), /v1/1mib, /v1/stream, /v1/ws and an OpenAI-shaped
// /v1/chat/completions (meter.go). X-Bench-Auth says whether an Authorization header
// arrived, so the bench can check that airlock injected one.
func upstreamMux() http.Handler {
	big := make([]byte, mib)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/small", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(smallBody))}
		markAuth(h, r)
		_, _ = w.Write(smallBody)
	})
	mux.HandleFunc("/v1/1mib", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		markAuth(w.Header(), r)
		_, _ = w.Write(big)
	})
	mux.HandleFunc("/v1/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		markAuth(w.Header(), r)
		rc := http.NewResponseController(w)
		_, _ = w.Write([]byte("data: {\"n\":1}\n\n"))
		_ = rc.Flush()
		t := time.NewTimer(5 * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write([]byte("data: {\"n\":2}\n\n"))
	})
	mux.HandleFunc("/v1/stream", streamEvents)
	mux.HandleFunc("/v1/chat/completions", chatCompletions)
	mux.HandleFunc("/v1/ws", wsEcho)
	return mux
}

// streamEvents is a long SSE stream: one event per second (?every=D),
// each carrying the time it was written, until the client goes away.
func streamEvents(w http.ResponseWriter, r *http.Request) {
	every, err := time.ParseDuration(r.URL.Query().Get("every"))
	if err != nil || every <= 0 {
		every = time.Second
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	markAuth(w.Header(), r)
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	t := time.NewTicker(every)
	defer t.Stop()
	buf := make([]byte, 0, 64)
	for {
		select {
		case <-r.Context().Done():
			return
		case now := <-t.C:
			buf = append(strconv.AppendInt(append(buf[:0], "data: "...), now.UnixNano(), 10), "\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

func markAuth(h http.Header, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		h["X-Bench-Auth"] = []string{"yes"}
	}
}
