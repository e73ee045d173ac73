package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tlsUpstream is a real TLS upstream on 127.0.0.1 that counts its
// connections.
func tlsUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// clientFor dials srv (TLS, verified against its certificate) whatever the
// request's host.
func clientFor(srv *httptest.Server) *Client {
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	cfg.ServerName = "127.0.0.1"
	addr := srv.Listener.Addr().String()
	return &Client{Dial: func(ctx context.Context, scheme, _ string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || scheme == "http" {
			return c, err
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
		return tc, nil
	}}
}

func get(t *testing.T, cl *Client, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

// The framing cases against a real TLS upstream: each body arrives whole,
// trailers are read, bodiless answers need no read, and the connection is
// reused only where the exchange ended cleanly.
func TestClientFraming(t *testing.T) {
	cases := map[string]struct {
		method  string
		path    string
		body    string
		chunked bool // the request body has no length
		want    string
		status  int
		trailer string
		reuse   bool
	}{
		"content-length":    {method: "GET", path: "/len", want: "hello", status: 200, reuse: true},
		"chunked":           {method: "GET", path: "/chunked", want: "abcdef", status: 200, reuse: true},
		"trailers":          {method: "GET", path: "/trailer", want: "body", status: 200, trailer: "t-value", reuse: true},
		"head":              {method: "HEAD", path: "/len", want: "", status: 200, reuse: true},
		"204":               {method: "GET", path: "/204", want: "", status: 204, reuse: true},
		"304":               {method: "GET", path: "/304", want: "", status: 304, reuse: true},
		"post body":         {method: "POST", path: "/echo", body: "payload", want: "payload", status: 200, reuse: true},
		"post chunked body": {method: "POST", path: "/echo", body: "streamed", chunked: true, want: "streamed", status: 200, reuse: true},
		"connection close":  {method: "GET", path: "/close", want: "bye", status: 200, reuse: false},
		"until close":       {method: "GET", path: "/eof", want: "rest of it", status: 200, reuse: false},
		"100 continue":      {method: "POST", path: "/continue", body: "x", want: "after 100", status: 200, reuse: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv, conns := tlsUpstream(t, framingHandler)
			cl := clientFor(srv)
			defer cl.CloseIdleConnections(true)
			before := conns.Load()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // no length known
				}
			}
			resp, got := get(t, cl, tc.method, srv.URL+tc.path, body)
			if resp.StatusCode != tc.status || got != tc.want {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, got, tc.status, tc.want)
			}
			if tc.trailer != "" && resp.Trailer.Get("X-T") != tc.trailer {
				t.Fatalf("trailer %q, want %q", resp.Trailer.Get("X-T"), tc.trailer)
			}
			// A second request: one connection if the first was reusable
			// (a request's body writer may pool it a moment after the
			// answer ended: wait for it, not for a clock).
			if tc.reuse {
				waitPooled(t, cl, 1)
			}
			if _, got := get(t, cl, "GET", srv.URL+"/len", nil); got != "hello" {
				t.Fatalf("second request: %q", got)
			}
			want := int64(2)
			if tc.reuse {
				want = 1
			}
			if n := conns.Load() - before; n != want {
				t.Fatalf("%d connections for two requests, want %d", n, want)
			}
		})
	}
}

// waitPooled waits until cl holds n idle connections.
func waitPooled(t *testing.T, cl *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl.mu.Lock()
		got := cl.nidle
		cl.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func framingHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/len":
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	case "/chunked":
		for _, s := range []string{"ab", "cd", "ef"} {
			_, _ = io.WriteString(w, s)
			w.(http.Flusher).Flush()
		}
	case "/trailer":
		w.Header().Set("Trailer", "X-T")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-T", "t-value")
	case "/204":
		w.WriteHeader(http.StatusNoContent)
	case "/304":
		w.WriteHeader(http.StatusNotModified)
	case "/echo", "/continue":
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/continue" {
			b = []byte("after 100")
		}
		_, _ = w.Write(b)
	case "/close":
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	case "/eof":
		c, brw, _ := http.NewResponseController(w).Hijack()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\n\r\nrest of it")
		_ = brw.Flush()
		_ = c.Close()
	}
}

// hostileUpstream answers every request with raw bytes from reply
// (closing the connection after it when reply ends with closeMark); it
// counts connections.
func hostileUpstream(t *testing.T, reply func(n int) string) (addr string, conns *atomic.Int64) {
	t.Helper()
	return serveConns(t, func(c net.Conn, n int) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			r, closeAfter := strings.CutSuffix(reply(n), closeMark)
			if _, err := io.WriteString(c, r); err != nil || closeAfter {
				return
			}
		}
	})
}

// serveConns accepts loopback connections until the test ends, each
// served by handle (n counts from 1) on its own goroutine and closed
// after it; the cleanup waits for them all.
func serveConns(t *testing.T, handle func(c net.Conn, n int)) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = &atomic.Int64{}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, n)
			}()
		}
	}()
	return ln.Addr().String(), conns
}

const closeMark = "<close>"

func plainClient(addr string) *Client {
	return &Client{Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}

// Hostile upstreams: what they send is refused with an error, never
// relayed as a response, and their connection is never reused.
func TestClientHostileUpstream(t *testing.T) {
	huge := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 0\r\n\r\n"
	cases := map[string]struct {
		reply string
		err   string // a RoundTrip error containing this; "" the body read fails
	}{
		"oversized head":           {reply: huge, err: "too large"},
		"duplicate content-length": {reply: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc", err: "Content-Length"},
		"bad chunk size":           {reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n" + closeMark},
		"unknown coding":           {reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked, foo\r\n\r\n", err: "transfer"},
		"garbage status":           {reply: "HTTP/9 what\r\n\r\n", err: "malformed"},
		"early close":              {reply: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this" + closeMark},
		"too many 1xx":             {reply: strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 10) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", err: "informational"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			reply := tc.reply
			addr, conns := hostileUpstream(t, func(int) string { return reply })
			cl := plainClient(addr)
			defer cl.CloseIdleConnections(true)
			for i := range 2 {
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				resp, err := cl.RoundTrip(req)
				if tc.err != "" {
					if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.err)) {
						t.Fatalf("round trip %d: err %v, want one containing %q", i, err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("round trip %d: %v", i, err)
				}
				if _, err := io.ReadAll(resp.Body); err == nil {
					t.Fatalf("round trip %d: the body read ended cleanly", i)
				}
				_ = resp.Body.Close()
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections for two exchanges, want 2 (never reused after a bad one)", n)
			}
		})
	}
}

// Hostile: an upstream answers one request with two responses. The
// second is never handed to the next request (which might be another
// agent's): the connection is dropped, the next request gets its own.
func TestClientResponseSmuggling(t *testing.T) {
	cases := map[string]string{
		"in the same write": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN",
		"chunked then more": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN",
		"te and cl":         "HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN",
	}
	for name, reply := range cases {
		t.Run(name, func(t *testing.T) {
			first := true
			var mu sync.Mutex
			addr, conns := hostileUpstream(t, func(int) string {
				mu.Lock()
				defer mu.Unlock()
				if first {
					first = false
					return reply
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"
			})
			cl := plainClient(addr)
			defer cl.CloseIdleConnections(true)
			_, a := get(t, cl, "GET", "http://"+addr+"/a", nil)
			_, b := get(t, cl, "GET", "http://"+addr+"/b", nil)
			if a != "ok" || b != "mine" {
				t.Fatalf("bodies %q, %q; want ok, mine", a, b)
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}

// Hostile, in time: the extra response arrives while the connection sits
// idle in the pool. The check before reuse drops it.
func TestClientUnsolicitedWhileIdle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan struct{})
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
					if n == 1 {
						time.Sleep(50 * time.Millisecond) // the client pools the connection
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN")
						close(sent)
					}
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	cl := plainClient(addr)
	defer cl.CloseIdleConnections(true)
	if _, b := get(t, cl, "GET", "http://"+addr+"/a", nil); b != "mine" {
		t.Fatalf("first: %q", b)
	}
	<-sent
	deadline := time.Now().Add(2 * time.Second)
	for pending, known := socketPending(cl.idle["http://"+addr][0].nc); known && !pending && time.Now().Before(deadline); pending, _ = socketPending(cl.idle["http://"+addr][0].nc) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, b := get(t, cl, "GET", "http://"+addr+"/b", nil); b != "mine" {
		t.Fatalf("second request got %q, want its own answer", b)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// A pooled connection the upstream closed is not used; a request whose
// reused connection dies before any answer is sent once more.
func TestClientDeadIdleConnection(t *testing.T) {
	srv, conns := tlsUpstream(t, framingHandler)
	cl := clientFor(srv)
	defer cl.CloseIdleConnections(true)
	get(t, cl, "GET", srv.URL+"/len", nil)
	srv.CloseClientConnections()
	if _, got := get(t, cl, "GET", srv.URL+"/len", nil); got != "hello" {
		t.Fatalf("after the upstream closed: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// The request's context ends a head that never comes and a body that
// stops, closing the connection under the reader; no goroutine is left.
func TestClientContextCancels(t *testing.T) {
	release := make(chan struct{})
	srv, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall-body" {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cl := clientFor(srv)
	defer cl.CloseIdleConnections(true)
	base := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/stall-head", nil)
	if resp, err := cl.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled head: %v, want the deadline (%+v)", err, resp)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", srv.URL+"/stall-body", nil)
	resp, err := cl.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("stalled body: %v, want context.Canceled", err)
	}
	_ = resp.Body.Close()
	// The server's goroutines end as it sees the connections close.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("%d goroutines after, %d before", n, base)
	}
}

// An upstream choosing h2 is refused before anything is written.
func TestClientRefusesH2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(framingHandler))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cl := clientFor(srv)
	body := &closeTracker{Reader: strings.NewReader("for the h2 client")}
	req, _ := http.NewRequest("POST", srv.URL+"/echo", body)
	if _, err := cl.RoundTrip(req); !errors.Is(err, ErrNotHTTP1) {
		t.Fatalf("err %v, want ErrNotHTTP1", err)
	}
	if body.closed {
		t.Fatal("the body was closed: the caller's HTTP/2 client could not send it")
	}
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

// Header names and values that would split the head are refused, as
// net/http's Transport refuses them.
func TestClientRefusesBadHeaders(t *testing.T) {
	addr, conns := hostileUpstream(t, func(int) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" })
	cl := plainClient(addr)
	for name, h := range map[string]http.Header{
		"value with CRLF": {"X-A": {"a\r\nX-Injected: 1"}},
		"name with space": {"X A": {"b"}},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Header = h
		if _, err := cl.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Fatalf("%d connections opened for refused requests", n)
	}
}

// Goroutines: a request without a body costs none while its response
// streams (net/http's Transport parks two per connection).
func TestClientNoGoroutinePerStream(t *testing.T) {
	events := make(chan struct{})
	srv, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-events
	})
	cl := clientFor(srv)
	defer cl.CloseIdleConnections(true)
	var bodies []io.ReadCloser
	base := runtime.NumGoroutine()
	const n = 20
	for range n {
		req, _ := http.NewRequest("GET", srv.URL+"/sse", nil)
		resp, err := cl.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	// The upstream (net/http.Server) holds two goroutines per connection
	// (serve, background read); the client none. The Transport would
	// add two more per connection.
	got := runtime.NumGoroutine() - base
	close(events)
	if got > 2*n+2 {
		t.Fatalf("%d more goroutines for %d streams (the server's %d included)", got, n, 2*n)
	}
	for _, b := range bodies {
		_, _ = io.ReadAll(b)
		_ = b.Close()
	}
}

// Ready is asked before Dial: a connection it hands over carries the
// request (Dial is never called), none sends the request through Dial, and
// its error (ErrNotHTTP1 included, the body left open) is the request's.
func TestClientReady(t *testing.T) {
	srv, conns := tlsUpstream(t, framingHandler)
	cases := map[string]struct {
		ready              bool  // Ready hands over a dialled connection
		err                error // Ready's error
		wantDials, wantErr bool
	}{
		"ready connection": {ready: true},
		"none ready":       {wantDials: true},
		"not http/1.1":     {err: ErrNotHTTP1, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cl := clientFor(srv)
			dial := cl.Dial
			var dials atomic.Int64
			cl.Dial = func(ctx context.Context, scheme, addr string) (net.Conn, error) {
				dials.Add(1)
				return dial(ctx, scheme, addr)
			}
			cl.Ready = func(ctx context.Context, scheme, addr string) (net.Conn, error) {
				if tc.ready {
					return dial(ctx, scheme, addr)
				}
				return nil, tc.err
			}
			defer cl.CloseIdleConnections(true)
			before := conns.Load()
			body := &closeTracker{Reader: strings.NewReader("hello")}
			req, _ := http.NewRequest("POST", srv.URL+"/echo", body)
			resp, err := cl.RoundTrip(req)
			if tc.wantErr {
				if !errors.Is(err, tc.err) || body.closed {
					t.Fatalf("err %v (body closed %v), want %v and the body open", err, body.closed, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(b) != "hello" {
				t.Fatalf("body %q, want the echo", b)
			}
			if got := dials.Load() > 0; got != tc.wantDials {
				t.Fatalf("Dial called %d times, want called: %v", dials.Load(), tc.wantDials)
			}
			if conns.Load() != before+1 {
				t.Fatalf("%d new upstream connections, want 1", conns.Load()-before)
			}
		})
	}
}
