package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/airlock/airlock/proxy/internal/park"
)

// # The lean client
//
// net/http.Transport gives every HTTP/1.1 upstream connection two
// goroutines (readLoop, writeLoop) and a 4 KiB reader and writer for its
// whole life. A relayed SSE stream holds its upstream connection for
// minutes: with ten thousand streams that is twenty thousand parked
// goroutines. [Client] is a keep-alive HTTP/1.1 client in which the
// goroutine that reads the response reads the connection itself: a
// request without a body costs no goroutine at all, one with a body a
// writer goroutine only until the body is sent. Heads are written with
// [http.Request.Write] and read with [http.ReadResponse], the framing code
// net/http's Transport uses, so Content-Length, chunked, trailers, HEAD,
// 204 and 304 are handled exactly as before; the client adds the
// connection's life around them:
//
//   - a connection goes back to the pool only after its response body was
//     read to EOF, the request was fully written, neither side asked to
//     close, and nothing is buffered beyond the response (a second,
//     unsolicited response is never handed to the next request);
//   - a pooled connection is checked before reuse: the upstream closed it,
//     or sent bytes while it was idle, and it is dropped (a non-blocking
//     peek at the socket; the check after the response asks tls through
//     [TLSSocket], see client_probe.go);
//   - an idle connection holds no read buffer (pooled, taken again on
//     reuse) and is closed after IdleTimeout;
//   - response heads are capped at MaxHeaderBytes, at most max1xx
//     informational heads are skipped before the final one;
//   - the request's context cancels: a dial, a head, a body (the
//     connection is closed under the reader);
//   - [Client.Send]'s timeout bounds the dial, the head, then each gap
//     in the body, kept by the connection's one timer (the idle timer
//     while pooled): no timer, context or wrapper per request;
//   - a request without a body sent on a reused connection that died
//     before any byte of a response is sent once more on a new one.
//
// A TLS connection that negotiates anything but HTTP/1.1 is refused with
// [ErrNotHTTP1] (the caller sends the request through its HTTP/2 client).

// ErrNotHTTP1 is returned, before any byte of the request is sent (and
// with its body left open, unlike other errors), when the upstream's TLS
// handshake chose a protocol other than HTTP/1.1 (h2).
var ErrNotHTTP1 = errors.New("upstream negotiated a protocol other than HTTP/1.1")

var (
	errResponseHeadTooLarge = errors.New("upstream response head too large")
	errTooMany1xx           = errors.New("upstream sent too many informational (1xx) responses")
	errBodyCut              = errors.New("read response body: cut by the timeout or the request's end")
	errBodyAfterClose       = errors.New("upstream response body read after close")
)

// ErrTimeout is returned (wrapped) by [Client.Send] and by its response
// body's Read when the request's timeout passed: no response head in
// time, or a gap between body bytes longer than it.
var ErrTimeout = errors.New("upstream timed out")

const (
	defaultClientIdleTimeout = 90 * time.Second
	defaultMaxIdlePerHost    = 1024
	defaultMaxIdle           = 4096
	defaultMaxResponseHead   = 1 << 20
	// max1xx is how many informational heads precede the final one at most
	// (net/http's Transport allows 5).
	max1xx = 5
	// clientReadSize is the read buffer of a connection with a request in
	// flight: heads are small, and body reads larger than it bypass it.
	clientReadSize = 2 << 10
	// clientWriteSize buffers a request head (and small bodies) while the
	// request is written; it goes back to its pool at once.
	clientWriteSize = 4 << 10
	// writerGrace is how long the end of a response waits for its
	// request's body writer before leaving the pooling to it.
	writerGrace = 20 * time.Millisecond
)

var (
	clientReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, clientReadSize) }}
	clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, clientWriteSize) }}
)

// Client is a keep-alive HTTP/1.1 client (see the section above). Set the
// fields before the first RoundTrip.
type Client struct {
	// Dial opens a connection to addr (host:port) for scheme "http" or
	// "https"; for https a TLS connection whose handshake is done.
	Dial func(ctx context.Context, scheme, addr string) (net.Conn, error)
	// Ready, when set, is asked first for a connection to addr that is
	// already open (a TLS one with its handshake done): it runs on the
	// caller's goroutine, which Dial does not (see dial), so a connection
	// dialled ahead of the request costs no goroutine hand-over. It
	// returns nil and no error when it has none, and may return
	// [ErrNotHTTP1].
	Ready func(ctx context.Context, scheme, addr string) (net.Conn, error)
	// IdleTimeout closes a pooled connection unused this long (0: 90 s).
	IdleTimeout time.Duration
	// MaxIdlePerHost and MaxIdle bound the pool (0: 1024 and 4096).
	MaxIdlePerHost, MaxIdle int
	// MaxHeaderBytes caps a response head (0: 1 MiB).
	MaxHeaderBytes int64

	mu     sync.Mutex // guards idle, nidle, closed
	idle   map[string][]*clientConn
	nidle  int
	closed bool
}

// clientConn is one upstream connection.
type clientConn struct {
	cl     *Client
	key    string
	nc     net.Conn
	br     *bufio.Reader // nil while idle in the pool
	rd     connReader
	reused bool
	peek   *peeker // the socket's, made on the first reuse
	nopeek bool    // no socket to peek at
	// timer is the connection's one timer: in the pool it closes the
	// connection idle too long, during an exchange it is the request's
	// timeout (Send). It is stopped whenever pooled changes.
	timer    *time.Timer
	pooled   atomic.Bool  // in the pool: timer is the idle timeout
	timeout  atomic.Int64 // the exchange's timeout (time.Duration); 0: timer not armed
	timedOut atomic.Bool  // the exchange's timeout closed the connection
	dead     atomic.Bool  // closed: never pooled again
	// slot is the connection's place in the poller for a detached
	// stream's waits (streamwait.go), made at the first; close removes
	// it first. ready and wakeFn are the wait's, set before each Wait.
	slot   atomic.Pointer[park.Slot]
	ready  func()
	wakeFn func()
}

// fire is the connection's timer: the idle timeout of a pooled
// connection, the request timeout of an exchange.
func (c *clientConn) fire() {
	if c.pooled.Load() {
		c.cl.expire(c)
		return
	}
	c.timedOut.Store(true)
	c.close()
}

// arm starts the exchange's timeout (none when d is 0).
func (c *clientConn) arm(d time.Duration) {
	if d <= 0 {
		return
	}
	c.timeout.Store(int64(d))
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.fire)
		return
	}
	c.timer.Reset(d)
}

// rearm starts the next gap of the exchange's timeout.
func (c *clientConn) rearm() {
	if d := c.timeout.Load(); d > 0 {
		c.timer.Reset(time.Duration(d))
	}
}

// disarm stops the exchange's timeout; false when it already fired.
func (c *clientConn) disarm() bool {
	if c.timeout.Swap(0) <= 0 {
		return true
	}
	return c.timer.Stop()
}

// connReader counts what a response read from the connection and caps
// the bytes of a head.
type connReader struct {
	c     *clientConn
	n     int64 // bytes read since the request was sent
	limit int64 // remaining head bytes; < 0: no cap (a body)
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.limit == 0 {
		return 0, errResponseHeadTooLarge
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	n, err := r.c.nc.Read(p)
	r.n += int64(n)
	if r.limit > 0 {
		r.limit -= int64(n)
	}
	return n, err
}

func (c *clientConn) close() {
	if c.dead.CompareAndSwap(false, true) {
		c.unparkStream() // before the socket goes: a closed fd leaves the poller silently
		_ = c.nc.Close()
	}
}

func (cl *Client) idleTimeout() time.Duration {
	if cl.IdleTimeout > 0 {
		return cl.IdleTimeout
	}
	return defaultClientIdleTimeout
}

func (cl *Client) maxHead() int64 {
	if cl.MaxHeaderBytes > 0 {
		return cl.MaxHeaderBytes
	}
	return defaultMaxResponseHead
}

// addrOf is the scheme and host:port (default port filled in) of u, and
// the pool key scheme://host:port, of which addr is the tail (one string).
func addrOf(req *http.Request) (scheme, addr, key string, err error) {
	u := req.URL
	if u == nil || u.Host == "" {
		return "", "", "", errors.New("h1 client: request without a host")
	}
	scheme = strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return "", "", "", fmt.Errorf("h1 client: unsupported scheme %q", u.Scheme)
	case port != "":
	case scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	host := u.Hostname()
	if strings.IndexByte(host, ':') >= 0 { // as net.JoinHostPort
		key = scheme + "://[" + host + "]:" + port
	} else {
		key = scheme + "://" + host + ":" + port
	}
	return scheme, key[len(scheme)+len("://"):], key, nil
}

// RoundTrip sends req and returns the response, whose body reads the
// upstream connection directly; closing the body before its end closes
// the connection.
func (cl *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return cl.Send(req, 0)
}

// Send is RoundTrip with a timeout (0: none): for the dial, then for the
// response head, then for each gap between body bytes (a stream lasts as
// long as it keeps talking). A timeout closes the connection and is
// reported as [ErrTimeout]. It costs no timer of its own: the
// connection's idle timer serves.
func (cl *Client) Send(req *http.Request, timeout time.Duration) (*http.Response, error) {
	scheme, addr, key, err := addrOf(req)
	if err != nil {
		closeReqBody(req)
		return nil, err
	}
	if err := validHead(req); err != nil {
		closeReqBody(req)
		return nil, err
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		c, err := cl.conn(ctx, key, scheme, addr, timeout)
		if err != nil {
			if !errors.Is(err, ErrNotHTTP1) { // the caller sends it elsewhere
				closeReqBody(req)
			}
			return nil, err
		}
		resp, err := c.roundTrip(req, timeout)
		if err == nil {
			return resp, nil
		}
		if attempt == 0 && c.reused && c.rd.n == 0 && replayable(req) && ctx.Err() == nil && !c.timedOut.Load() {
			continue // the pooled connection was dead: once more on a new one
		}
		return nil, err
	}
}

// validHead refuses what net/http's Transport refuses before writing:
// a bad method, header names or values that could split the head.
func validHead(req *http.Request) error {
	if req.Method != "" && !validToken(req.Method) {
		return fmt.Errorf("h1 client: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1 client: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h1 client: invalid header field value for %q", k)
			}
		}
	}
	for k := range req.Trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h1 client: invalid trailer field name %q", k)
		}
	}
	return nil
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

func closeReqBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// replayable: no body, and a method that may be sent twice (net/http's
// rule).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

// conn returns a pooled connection to key that is still clean, or a new
// one (dialled within timeout, when set).
func (cl *Client) conn(ctx context.Context, key, scheme, addr string, timeout time.Duration) (*clientConn, error) {
	for {
		c := cl.take(key)
		if c == nil {
			break
		}
		c.br = clientReaders.Get().(*bufio.Reader)
		c.br.Reset(&c.rd)
		if !c.quiet() {
			c.close() // closed by the upstream, or it talked while idle
			c.releaseReader()
			continue
		}
		c.reused = true
		return c, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if timeout > 0 {
		dctx, cancel := context.WithTimeoutCause(ctx, timeout, ErrTimeout)
		defer cancel()
		ctx = dctx
	}
	nc, err := cl.open(ctx, scheme, addr)
	if err != nil {
		if cerr := context.Cause(ctx); errors.Is(cerr, ErrTimeout) {
			return nil, fmt.Errorf("%s: dial: %w", addr, ErrTimeout)
		}
		return nil, err
	}
	c := &clientConn{cl: cl, key: key, nc: nc}
	c.rd.c = c
	c.br = clientReaders.Get().(*bufio.Reader)
	c.br.Reset(&c.rd)
	return c, nil
}

// open returns a new connection to addr: Ready's, or a dial's.
func (cl *Client) open(ctx context.Context, scheme, addr string) (net.Conn, error) {
	var nc net.Conn
	var err error
	if cl.Ready != nil {
		nc, err = cl.Ready(ctx, scheme, addr)
	}
	if nc == nil && err == nil {
		nc, err = cl.dial(ctx, scheme, addr)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
			_ = nc.Close()
			return nil, fmt.Errorf("%s: ALPN %q: %w", addr, p, ErrNotHTTP1)
		}
	}
	return nc, nil
}

// dial runs Dial on a goroutine of its own: a TLS handshake (ML-KEM key
// shares, certificate checks) needs a deep stack for a moment, and the
// caller's goroutine may then wait in a stream for minutes with whatever
// stack it grew to (a stack shrinks by half per GC cycle at most).
func (cl *Client) dial(ctx context.Context, scheme, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := cl.Dial(ctx, scheme, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// take pops the most recently pooled connection of key.
func (cl *Client) take(key string) *clientConn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for {
		list := cl.idle[key]
		if len(list) == 0 {
			return nil
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		if len(list) == 1 {
			delete(cl.idle, key)
		} else {
			cl.idle[key] = list[:len(list)-1]
		}
		cl.nidle--
		if c.timer.Stop() {
			c.pooled.Store(false)
			return c
		}
		// The idle timer fired and is closing it.
	}
}

// put pools c after a complete exchange, or closes it.
func (cl *Client) put(c *clientConn) {
	if c.dead.Load() || !c.drained() {
		c.close()
		return
	}
	c.releaseReader()
	cl.mu.Lock()
	if cl.closed || len(cl.idle[c.key]) >= orDefault(cl.MaxIdlePerHost, defaultMaxIdlePerHost) || cl.nidle >= orDefault(cl.MaxIdle, defaultMaxIdle) {
		cl.mu.Unlock()
		c.close()
		return
	}
	if cl.idle == nil {
		cl.idle = make(map[string][]*clientConn)
	}
	cl.idle[c.key] = append(cl.idle[c.key], c)
	cl.nidle++
	c.pooled.Store(true) // the timer is stopped (disarm)
	if c.timer == nil {
		c.timer = time.AfterFunc(cl.idleTimeout(), c.fire)
	} else {
		c.timer.Reset(cl.idleTimeout())
	}
	cl.mu.Unlock()
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// expire closes c, idle for IdleTimeout.
func (cl *Client) expire(c *clientConn) {
	cl.mu.Lock()
	list := cl.idle[c.key]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			cl.nidle--
			break
		}
	}
	if len(list) == 0 {
		delete(cl.idle, c.key)
	} else {
		cl.idle[c.key] = list
	}
	cl.mu.Unlock()
	c.close()
}

// CloseIdleConnections closes the pooled connections; with shutdown set,
// no connection is pooled again.
func (cl *Client) CloseIdleConnections(shutdown bool) {
	cl.mu.Lock()
	idle := cl.idle
	cl.idle, cl.nidle = nil, 0
	if shutdown {
		cl.closed = true
	}
	cl.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.timer.Stop()
			c.close()
		}
	}
}

func (c *clientConn) releaseReader() {
	c.br.Reset(nil)
	clientReaders.Put(c.br)
	c.br = nil
}

// quiet reports whether a pooled connection has nothing to read: the
// socket itself is asked where it can be (a TLS record arriving in pieces
// is seen too), else the connection is read with a deadline in the past.
func (c *clientConn) quiet() bool {
	if p := c.socketPeeker(); p != nil {
		return !p.pending()
	}
	return c.readsNothing() // no socket to peek at: through tls, with a deadline
}

// socketPeeker is the peeker of c's socket, made on first use; nil when
// no socket can be reached.
func (c *clientConn) socketPeeker() *peeker {
	if c.peek == nil && !c.nopeek {
		c.peek = newPeeker(c.nc)
		c.nopeek = c.peek == nil
	}
	return c.peek
}

// drained reports whether nothing follows the response on c: nothing in
// the read buffer, and nothing readable at once (TLS may hold decrypted
// bytes the buffer has not taken; the upstream may have closed).
func (c *clientConn) drained() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if s := probeOf(c.nc); s != nil {
		// tls answers from what it holds, else fails at once (client_probe.go).
		s.probing = true
		c.rd.limit = -1
		_, err := c.br.Peek(1)
		s.probing = false
		return err == errProbe && s.atBoundary()
	}
	return c.readsNothing()
}

// readsNothing reads c with a deadline in the past: true when nothing
// (no byte, no EOF, no error) was there to read. Go checks the deadline
// before it reads the socket, so this sees what tls and the buffers hold,
// not bytes still in the socket: without a peeker (a socket behind a
// wrapper that exposes no NetConn or SyscallConn) those go unseen.
func (c *clientConn) readsNothing() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if err := c.nc.SetReadDeadline(time.Now()); err != nil {
		return false
	}
	c.rd.limit = -1
	_, err := c.br.Peek(1)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		return false // bytes no request asked for, EOF or a broken connection
	}
	return c.nc.SetReadDeadline(time.Time{}) == nil
}

// roundTrip runs one exchange on c within timeout (0: none). On error c
// is closed.
func (c *clientConn) roundTrip(req *http.Request, timeout time.Duration) (*http.Response, error) {
	ctx := req.Context()
	stop := context.AfterFunc(ctx, c.close) // cancels a write, a head or a body read
	c.arm(timeout)
	c.rd.n, c.rd.limit = 0, c.cl.maxHead()
	x := &exchange{c: c} // its body too: one allocation
	x.parts.Store(1)
	if req.Body == nil || req.Body == http.NoBody {
		if err := c.write(req); err != nil {
			stop()
			c.disarm()
			c.close()
			return nil, c.failed(ctx, fmt.Errorf("write request: %w", err))
		}
	} else {
		// Full duplex: the upstream may answer before it read the body.
		x.parts.Store(2)
		x.wdone = make(chan struct{})
		go x.writeBody(req)
	}
	resp, err := c.readHead(req)
	if err == nil && ctx.Err() != nil {
		// The context ended as the head arrived: closing the connection
		// (TLS close_notify) can make the upstream answer a request it was
		// still working on; that answer is not the upstream's.
		err = ctx.Err()
	}
	if err == nil && c.timedOut.Load() {
		err = fmt.Errorf("read response: %w", ErrTimeout) // the same, for the timeout's close
	}
	if err != nil {
		stop()
		c.disarm()
		c.close()
		if x.wdone != nil {
			select {
			case <-x.wdone:
				if x.werr != nil && c.rd.n == 0 {
					return nil, c.failed(ctx, fmt.Errorf("write request: %w", x.werr))
				}
			default: // the writer ends on the closed connection
			}
		}
		return nil, c.failed(ctx, err)
	}
	c.rd.limit = -1
	c.rearm() // the first gap of the body starts now
	x.reuse = !resp.Close && !req.Close
	b := &x.body
	*b = clientBody{x: x, ctx: ctx, rc: resp.Body, stop: stop}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// exchange is one request on a connection: its response body and, for a
// request with a body, the writer sending it. The last of the two to end
// pools the connection, if both ended cleanly and neither side asked to
// close; a failure closes it at once.
type exchange struct {
	c      *clientConn
	parts  atomic.Int32 // halves still running
	failed atomic.Bool
	reuse  bool          // set by the reader before its half ends
	werr   error         // the writer's error, set before wdone is closed
	wdone  chan struct{} // nil: no writer
	body   clientBody    // the response body handed out
}

func (x *exchange) writeBody(req *http.Request) {
	err := x.c.write(req)
	x.werr = err
	close(x.wdone)
	x.end(err == nil) // an error closes the connection: the reader gives up too
}

func (x *exchange) end(ok bool) {
	if !ok {
		x.failed.Store(true)
		x.c.close()
	}
	if x.parts.Add(-1) != 0 {
		return
	}
	if x.failed.Load() || !x.reuse {
		x.c.close()
		return
	}
	x.c.cl.put(x.c)
}

// failed prefers the context's error, then the timeout, when either
// ended the exchange.
func (c *clientConn) failed(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if c.timedOut.Load() {
		return fmt.Errorf("%v: %w", err, ErrTimeout)
	}
	return err
}

// write sends req through a pooled write buffer.
func (c *clientConn) write(req *http.Request) error {
	bw := clientWriters.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	var err error
	if !writeHead(bw, req) { // the commonest heads without Request.Write's cost (client_head.go)
		err = req.Write(bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	clientWriters.Put(bw)
	return err
}

// readHead reads the final response head, skipping informational ones.
func (c *clientConn) readHead(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if c.rd.limit == 0 {
				return nil, errResponseHeadTooLarge
			}
			return nil, fmt.Errorf("read response: %w", err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		if n >= max1xx {
			return nil, errTooMany1xx
		}
	}
}

// clientBody is a response body read from the connection; its end (EOF)
// ends the exchange's reading half, a failure or an early Close closes
// the connection.
type clientBody struct {
	x    *exchange
	ctx  context.Context
	rc   io.ReadCloser
	stop func() bool
	done atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, errBodyAfterClose
	}
	n, err := b.rc.Read(p)
	c := b.x.c
	switch {
	case err == io.EOF && (c.timedOut.Load() || b.ctx.Err() != nil):
		// The end came after the timeout or the context closed the
		// connection: the upstream may well have ended the body cleanly
		// in answer to that close (its handler cancelled), but the
		// response was cut here, and must not reach the agent as whole.
		b.finish(false)
		err = c.failed(b.ctx, errBodyCut)
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		err = c.failed(b.ctx, err) // the context or the timeout closed the connection under the read
	case n > 0:
		c.rearm() // a gap ends
	}
	return n, err
}

// Close before the end closes the connection (its rest is never read).
func (b *clientBody) Close() error {
	b.finish(false)
	return nil
}

func (b *clientBody) finish(complete bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	if !b.stop() { // the context ended: the connection is being closed
		complete = false
	}
	if !b.x.c.disarm() { // the timeout fired: the connection is being closed
		complete = false
	}
	if complete && b.x.wdone != nil {
		// The answer is complete; the writer is usually a flush away from
		// done: give it a moment, so that the next request finds this
		// connection in the pool.
		select {
		case <-b.x.wdone:
		case <-time.After(writerGrace):
		}
	}
	b.x.end(complete)
}
