//go:build linux

package h1

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/internal/conn"
	"github.com/airlock/airlock/proxy/internal/park"
)

// Tests park after a short idle wait instead of a second.
func init() { parkAfter = 30 * time.Millisecond }

// parkEnv serves loopback connections the way airlock does: a tracked
// socket (conn.Tracked tells of a Close), a counting layer standing for
// the agent's connection slot, TLS when asked, the head guard on top.
type parkEnv struct {
	t       *testing.T
	s       *Server
	l       net.Listener
	tls     *tls.Config // nil: plain HTTP
	mu      sync.Mutex
	tracked []*conn.Tracked // server side of each connection, in accept order
	ctxs    []context.Context
	slots   atomic.Int64 // slot layers not closed yet
	closing atomic.Bool  // the server's Closing
}

func newParkEnv(t *testing.T, useTLS bool, idle time.Duration) *parkEnv {
	t.Helper()
	if !park.Supported() {
		t.Skip("no poller")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &parkEnv{t: t, l: l}
	e.s = &Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle, MaxHeaderBytes: 1 << 16, Closing: e.closing.Load}
	if useTLS {
		e.tls = &tls.Config{Certificates: []tls.Certificate{testCert(t)}}
	}
	t.Cleanup(func() { _ = l.Close() })
	go e.accept()
	return e
}

func (e *parkEnv) accept() {
	for {
		c, err := e.l.Accept()
		if err != nil {
			return
		}
		tr := &conn.Tracked{Conn: c, OnClose: func() {}}
		e.slots.Add(1)
		var sc net.Conn = &slotLayer{Conn: tr, release: func() { e.slots.Add(-1) }}
		e.mu.Lock()
		e.tracked = append(e.tracked, tr)
		e.mu.Unlock()
		go e.serve(sc)
	}
}

// serve runs ServeConn as airlock does: TLS handshake done first.
func (e *parkEnv) serve(sc net.Conn) {
	if e.tls != nil {
		tc := tls.Server(sc, e.tls)
		if err := tc.Handshake(); err != nil {
			_ = tc.Close()
			return
		}
		sc = tc
	}
	e.s.ServeConn(Guard(sc, nil), Conn{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/goroutine" { // what the goroutine serving the connection is
				_, _ = io.WriteString(w, goroutineKind())
				return
			}
			_, _ = io.WriteString(w, "path="+r.URL.Path)
		}),
		Started: func(ctx context.Context) { e.mu.Lock(); e.ctxs = append(e.ctxs, ctx); e.mu.Unlock() },
	})
}

// slotLayer stands for airlock's connection-slot wrapper: its Close is
// the cleanup a parked connection must not lose.
type slotLayer struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *slotLayer) Close() error      { c.once.Do(c.release); return c.Conn.Close() }
func (c *slotLayer) NetConn() net.Conn { return c.Conn }
func (c *slotLayer) Buffered() int     { return 0 }

// dial opens a client connection (TLS when the env serves it) and
// returns it with the raw socket below it.
func (e *parkEnv) dial() (net.Conn, *bufio.Reader, *batchConn) {
	e.t.Helper()
	raw, err := net.Dial("tcp", e.l.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	bc := &batchConn{Conn: raw}
	var c net.Conn = bc
	if e.tls != nil {
		tc := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			e.t.Fatal(err)
		}
		c = tc
	}
	e.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c), bc
}

// batchConn holds writes while hold is set and sends them in one write
// (one TCP segment on loopback) on flush: two TLS records arrive together.
type batchConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	if b.hold {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) flush(upTo int) error {
	n := min(upTo, len(b.buf))
	_, err := b.Conn.Write(b.buf[:n])
	b.buf = b.buf[n:]
	return err
}

func (e *parkEnv) innerCount() int {
	e.s.conns.mu.Lock()
	defer e.s.conns.mu.Unlock()
	return len(e.s.conns.conns)
}

// waitParked waits until n connections are in the poller.
func waitParked(t *testing.T, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d parked", n), func() bool { return park.Parked() == n })
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(end) {
			t.Fatalf("after 5s: not %s (parked %d)", what, park.Parked())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func getLine(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

func wantBody(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	if got := readBody(t, br); got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
}

// A parked connection wakes for whatever arrives, and nothing already
// buffered above the socket is left waiting for bytes that will not come:
// two TLS records in one segment (the second sits in crypto/tls's buffer
// after the first is read), a record and a half, pipelined requests, a
// lone first byte.
func TestParkedConnectionWakesWithNothingLost(t *testing.T) {
	cases := []struct {
		name string
		tls  bool
		run  func(t *testing.T, c net.Conn, br *bufio.Reader, bc *batchConn)
	}{
		{"tls one request", true, func(t *testing.T, c net.Conn, br *bufio.Reader, _ *batchConn) {
			_, _ = io.WriteString(c, getLine("/a"))
			wantBody(t, br, "path=/a")
		}},
		{"tls two records in one segment", true, func(t *testing.T, c net.Conn, br *bufio.Reader, bc *batchConn) {
			bc.hold = true
			_, _ = io.WriteString(c, getLine("/r1")) // one record each
			_, _ = io.WriteString(c, getLine("/r2"))
			bc.hold = false
			_ = bc.flush(len(bc.buf))
			wantBody(t, br, "path=/r1")
			wantBody(t, br, "path=/r2")
		}},
		{"tls a record and a half", true, func(t *testing.T, c net.Conn, br *bufio.Reader, bc *batchConn) {
			bc.hold = true
			_, _ = io.WriteString(c, getLine("/h1"))
			first := len(bc.buf)
			_, _ = io.WriteString(c, getLine("/h2"))
			bc.hold = false
			_ = bc.flush(first + (len(bc.buf)-first)/2)
			wantBody(t, br, "path=/h1")
			time.Sleep(4 * parkAfter) // parks with half a record in crypto/tls's buffer
			_ = bc.flush(len(bc.buf))
			wantBody(t, br, "path=/h2")
		}},
		{"plain pipelined", false, func(t *testing.T, c net.Conn, br *bufio.Reader, _ *batchConn) {
			_, _ = io.WriteString(c, getLine("/p1")+getLine("/p2"))
			wantBody(t, br, "path=/p1")
			wantBody(t, br, "path=/p2")
		}},
		{"plain lone first byte", false, func(t *testing.T, c net.Conn, br *bufio.Reader, _ *batchConn) {
			_, _ = io.WriteString(c, "G")
			time.Sleep(4 * parkAfter)
			_, _ = io.WriteString(c, getLine("/g")[1:])
			wantBody(t, br, "path=/g")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newParkEnv(t, tc.tls, time.Minute)
			c, br, bc := e.dial()
			_, _ = io.WriteString(c, getLine("/first"))
			wantBody(t, br, "path=/first")
			for round := range 2 { // and it parks again after each wake
				waitParked(t, 1)
				tc.run(t, c, br, bc)
				if t.Failed() {
					return
				}
				t.Logf("round %d served", round)
			}
			waitParked(t, 1)
			_ = c.Close()
			waitParked(t, 0)
			waitUntil(t, "connection finished", func() bool { return e.innerCount() == 0 && e.slots.Load() == 0 })
		})
	}
}

// The idle timeout still ends a parked connection, with its cleanup.
func TestParkedIdleTimeout(t *testing.T) {
	e := newParkEnv(t, true, 300*time.Millisecond)
	c, br, _ := e.dial()
	_, _ = io.WriteString(c, getLine("/a"))
	wantBody(t, br, "path=/a")
	waitParked(t, 1)
	t0 := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("read on an idle connection past its timeout: %v, want it closed", err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Fatalf("closed %v after parking, idle timeout 300ms", took)
	}
	waitParked(t, 0)
	waitUntil(t, "connection finished", func() bool { return e.innerCount() == 0 && e.slots.Load() == 0 })
	assertCancelled(t, e)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func assertCancelled(t *testing.T, e *parkEnv) {
	t.Helper()
	waitUntil(t, "every connection's context cancelled", func() bool { // finish cancels last
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, ctx := range e.ctxs {
			if ctx.Err() == nil {
				return false
			}
		}
		return true
	})
}

// A parked connection closed from elsewhere (what revoking its agent does:
// Close on the connection below the loop) is finished at once: the
// agent sees the close, and the whole cleanup runs (slot given back,
// context cancelled, untracked), though no goroutine was reading it.
func TestParkedClosedFromElsewhere(t *testing.T) {
	e := newParkEnv(t, true, time.Minute)
	c, br, _ := e.dial()
	_, _ = io.WriteString(c, getLine("/a"))
	wantBody(t, br, "path=/a")
	waitParked(t, 1)
	e.mu.Lock()
	tr := e.tracked[0]
	e.mu.Unlock()
	_ = tr.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("read after the close: %v, want it closed", err)
	}
	waitParked(t, 0)
	waitUntil(t, "slot released and connection untracked", func() bool { return e.innerCount() == 0 && e.slots.Load() == 0 })
	assertCancelled(t, e)
}

// Shutdown (CloseIdle) ends parked connections with their cleanup and
// counts none of them busy.
func TestParkedShutdown(t *testing.T) {
	e := newParkEnv(t, true, time.Minute)
	const n = 20
	brs := make([]*bufio.Reader, n)
	for i := range n {
		c, br, _ := e.dial()
		_, _ = io.WriteString(c, getLine("/a"))
		wantBody(t, br, "path=/a")
		brs[i] = br
	}
	waitParked(t, n)
	e.closing.Store(true)
	for tries := 0; e.s.CloseIdle() > 0; tries++ {
		if tries > 500 {
			t.Fatal("CloseIdle still reports busy connections after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, br := range brs {
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("connection %d after shutdown: %v, want it closed", i, err)
		}
	}
	waitParked(t, 0)
	waitUntil(t, "all finished", func() bool { return e.innerCount() == 0 && e.slots.Load() == 0 })
	assertCancelled(t, e)
}

// Many connections parked hold no goroutine each; agents connecting and
// leaving while others are parked leave no goroutine, wait or tracked
// connection behind.
func TestParkedFloodBackToBaseline(t *testing.T) {
	e := newParkEnv(t, false, time.Minute)
	base := ownGoroutines()
	const n = 200
	conns := make([]net.Conn, n)
	for i := range n {
		c, br, _ := e.dial()
		_, _ = io.WriteString(c, getLine("/a"))
		wantBody(t, br, "path=/a")
		conns[i] = c
	}
	waitParked(t, n)
	if g := ownGoroutines(); g > base+20 {
		t.Fatalf("%d goroutines with %d parked connections (baseline %d): want no goroutine per connection", g, n, base)
	}
	for round := range 3 { // connect and leave while the others stay parked
		for range 50 {
			c, br, _ := e.dial()
			_, _ = io.WriteString(c, getLine("/b"))
			wantBody(t, br, "path=/b")
			_ = c.Close()
		}
		t.Logf("round %d", round)
	}
	for i, c := range conns {
		if i%2 == 0 {
			_ = c.Close()
		}
	}
	waitParked(t, n/2)
	for i, c := range conns {
		if i%2 == 1 {
			_ = c.Close()
		}
	}
	waitParked(t, 0)
	waitUntil(t, "all finished", func() bool { return e.innerCount() == 0 && e.slots.Load() == 0 })
	waitUntil(t, "goroutines back to baseline", func() bool { return ownGoroutines() <= base+2 })
}

// testCert is a self-signed ECDSA leaf for 127.0.0.1.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "park test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// BenchmarkParkedWake is the latency of a request on a parked TLS
// connection (the poller wakes, a new goroutine reads) against a request
// on a connection whose goroutine still waits (-bench . -benchtime 50x).
func BenchmarkParkedWake(b *testing.B) {
	for _, parked := range []bool{false, true} {
		b.Run(map[bool]string{false: "waiting goroutine", true: "parked"}[parked], func(b *testing.B) {
			t := &testing.T{}
			e := newParkEnv(t, true, time.Minute)
			e.t = t
			c, br, _ := e.dial()
			defer c.Close()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if parked {
					for park.Parked() != 1 {
						time.Sleep(time.Millisecond)
					}
				} else {
					time.Sleep(parkAfter / 3) // idle, not yet parked
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				b.StartTimer()
				_, _ = io.WriteString(c, getLine("/w"))
				if _, err := http.ReadResponse(br, nil); err != nil {
					b.Fatal(err)
				}
				_, _ = br.Discard(br.Buffered())
			}
		})
	}
}

// TestParkedWakesKeepTheirGoroutine: a parked connection that wakes goes
// on serving on a worker that keeps its stack, not on a new goroutine
// each time (an agent pausing between requests wakes once per request,
// and a new goroutine grew its stack by copying at every one).
func TestParkedWakesKeepTheirGoroutine(t *testing.T) {
	e := newParkEnv(t, false, time.Minute)
	c, br, _ := e.dial()
	seen := map[string]int{}
	const rounds = 10
	for range rounds {
		waitParked(t, 1)
		_, _ = io.WriteString(c, getLine("/goroutine"))
		seen[readBody(t, br)]++
	}
	if seen["worker"] < rounds-1 { // one may find every worker busy
		t.Fatalf("of %d wakes, %d ran on a worker (%v): a new goroutine for every wake", rounds, seen["worker"], seen)
	}
}
