package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// heldConn gathers what TLS writes until flush, so that records (and raw
// bytes) reach the socket in one write, hence in one read of the client.
type heldConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *heldConn) Write(p []byte) (int, error) {
	if !h.hold {
		return h.Conn.Write(p)
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

func (h *heldConn) flush(raw string) error {
	_, err := h.Conn.Write(append(h.buf, raw...))
	h.buf, h.hold = h.buf[:0], false
	return err
}

// tlsReply is what a hostile TLS upstream sends for one request: each
// record a TLS write of its own, then raw bytes under TLS, all in one
// socket write.
type tlsReply struct {
	records []string
	raw     string
	later   string // a record sent 50 ms later, while the connection is idle
}

// hiddenSocket hides the socket under it: no NetConn, no SyscallConn.
type hiddenSocket struct{ net.Conn }

// hostileTLSUpstream answers the n-th connection's requests with reply(n).
// It returns a lean client that dials it as airlock does (TLSSocket under
// the TLS connection) and its connection count.
func hostileTLSUpstream(t *testing.T, reply func(n int) tlsReply) (*Client, string, *atomic.Int64) {
	return hostileTLSUpstreamOpt(t, false, reply)
}

// hostileTLSUpstreamOpt is hostileTLSUpstream whose client, with hide
// set, cannot reach the socket (as behind a wrapper without NetConn).
func hostileTLSUpstreamOpt(t *testing.T, hide bool, reply func(n int) tlsReply) (*Client, string, *atomic.Int64) {
	t.Helper()
	cert := httptest.NewUnstartedServer(nil)
	cert.StartTLS()
	srvCfg := cert.TLS.Clone()
	cliCfg := cert.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cert.Close()
	srvCfg.NextProtos = []string{"http/1.1"}
	cliCfg.NextProtos, cliCfg.ServerName = []string{"http/1.1"}, "127.0.0.1"
	addr, conns := serveConns(t, func(c net.Conn, n int) {
		h := &heldConn{Conn: c}
		tc := tls.Server(h, srvCfg)
		br := bufio.NewReader(tc)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			h.hold = true
			r := reply(n)
			for _, rec := range r.records {
				if _, err := tc.Write([]byte(rec)); err != nil {
					return
				}
			}
			if h.flush(r.raw) != nil {
				return
			}
			if r.later != "" {
				time.Sleep(50 * time.Millisecond)
				if _, err := tc.Write([]byte(r.later)); err != nil {
					return
				}
			}
		}
	})
	cl := &Client{Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		under := raw
		if hide {
			under = hiddenSocket{raw}
		}
		tc := tls.Client(TLSSocket(under), cliCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}}
	t.Cleanup(func() { cl.CloseIdleConnections(true) })
	return cl, addr, conns
}

// Hostile, over TLS: what follows a response — in its record, in records
// tls read ahead, in part of a record — is never handed to the next
// request. The pool check asks tls without a deadline (TLSSocket).
func TestClientTLSLeftovers(t *testing.T) {
	const ok, stolen = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN"
	cases := map[string]tlsReply{
		"in its record":       {records: []string{ok + stolen}},
		"records read ahead":  {records: []string{ok, stolen}},
		"part of a record":    {records: []string{ok}, raw: "\x17\x03\x03\x00\x40abc"},
		"a header in pieces":  {records: []string{ok}, raw: "\x17\x03"},
		"clean (pooled once)": {records: []string{ok}},
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int64
			cl, addr, conns := hostileTLSUpstream(t, func(int) tlsReply {
				if calls.Add(1) == 1 {
					return first
				}
				return tlsReply{records: []string{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"}}
			})
			if _, b := get(t, cl, "GET", "https://"+addr+"/a", nil); b != "ok" {
				t.Fatalf("first: %q", b)
			}
			time.Sleep(20 * time.Millisecond) // whatever follows has arrived
			// Not replayable: a bad connection's failure is not hidden by a retry.
			if _, b := get(t, cl, "POST", "https://"+addr+"/b", strings.NewReader("x")); b != "mine" {
				t.Fatalf("second request got %q, want its own answer", b)
			}
			want := int64(2)
			if name == "clean (pooled once)" {
				want = 1
			}
			if n := conns.Load(); n != want {
				t.Fatalf("%d connections, want %d", n, want)
			}
		})
	}
}

// frame follows record boundaries however the bytes are split.
func TestTLSSocketFrame(t *testing.T) {
	rec := func(n int) string {
		return "\x17\x03\x03" + string([]byte{byte(n >> 8), byte(n)}) + string(make([]byte, n))
	}
	stream := rec(3) + rec(300) + rec(0) + rec(1)
	cases := []struct {
		name  string
		upto  int // bytes passed on
		whole bool
	}{
		{"nothing", 0, true},
		{"in a header", 2, false},
		{"a header", 5, false},
		{"in a body", 6, false},
		{"one record", 8, true},
		{"two", 8 + 305, true},
		{"an empty record's header", 8 + 305 + 5, true},
		{"all", len(stream), true},
		{"one byte short", len(stream) - 1, false},
	}
	for _, tc := range cases {
		for _, step := range []int{1, 2, 7, 1 << 20} {
			s := &tlsSocket{}
			b := []byte(stream[:tc.upto])
			for len(b) > 0 {
				k := min(step, len(b))
				s.frame(b[:k])
				b = b[k:]
			}
			if s.atBoundary() != tc.whole {
				t.Errorf("%s, %d-byte reads: atBoundary %v, want %v", tc.name, step, s.atBoundary(), tc.whole)
			}
		}
	}
}

// Hostile, in time, over TLS: the extra response arrives while the
// connection sits idle in the pool; the check before reuse (a peek at the
// socket under TLSSocket) drops it. (A socket hidden behind a wrapper
// without NetConn cannot be peeked at: see readsNothing.)
func TestClientTLSUnsolicitedWhileIdle(t *testing.T) {
	const stolen = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN"
	for name, hide := range map[string]bool{"socket peeked": false} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int64
			cl, addr, conns := hostileTLSUpstreamOpt(t, hide, func(int) tlsReply {
				if calls.Add(1) == 1 {
					return tlsReply{records: []string{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}, later: stolen}
				}
				return tlsReply{records: []string{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"}}
			})
			if _, b := get(t, cl, "GET", "https://"+addr+"/a", nil); b != "ok" {
				t.Fatalf("first: %q", b)
			}
			time.Sleep(150 * time.Millisecond) // the extra response has arrived
			if _, b := get(t, cl, "POST", "https://"+addr+"/b", strings.NewReader("x")); b != "mine" {
				t.Fatalf("second request got %q, want its own answer", b)
			}
			if n := conns.Load(); n != 2 {
				t.Fatalf("%d connections, want 2", n)
			}
		})
	}
}
