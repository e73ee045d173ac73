// Package h1 is airlock's lean HTTP/1.1 server loop for MITM'd
// connections: one agent, one destination per connection, so none of
// net/http's per-request machinery; the same limits net/http enforces
// (head size 431, head deadline, idle timeout, Host required, bounded
// discard of unread bodies, contained panics, graceful shutdown). It serves
// an http.Handler; net/http.Server is the drop-in reference behind the
// same seam (proxy.Config.InnerNetHTTP). On Linux a connection idle
// between requests waits without a goroutine, in a shared poller
// (park.go, package park).
package h1

import (
	"strconv"

	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/proxy/errcode"
)

// The requests of a MITM'd connection are served by a lean HTTP/1.1 loop
// instead of a net/http.Server. The connection already belongs to one
// agent and one destination, so the loop needs none of net/http's
// per-request machinery (a background reader goroutine and a cancellable
// context per request, response buffers allocated per request): it reads a
// request with http.ReadRequest, hands it to the pipeline, and writes the
// response through innerWriter. Everything net/http enforced is enforced
// here: a cap on header bytes (431), a deadline on the head (slowloris), an
// idle timeout between requests, Host required, bodies left unread
// discarded up to a bound, panics contained, graceful shutdown.

// maxDiscard is how much of a request body left unread by the pipeline is
// read and dropped to keep the connection; beyond it the connection closes.
const maxDiscard = 256 << 10

var (
	errHeadTooLarge = errors.New("request head too large")
	errBodyClosed   = errors.New("request body read after the response")
	errNoContinue   = errors.New("request body not sent: the response came first")
	errRefused      = errors.New("request head refused")
)

// Server serves connections with the lean loop. Set the fields before the
// first ServeConn.
type Server struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	Closing           func() bool // true once shutdown began; nil: never

	conns innerConns
}

// Conn is what ServeConn needs for one connection.
type Conn struct {
	Handler http.Handler
	// Refuse answers a refused head on c (e as a response) and records it;
	// method is "?" when the head could not be parsed.
	Refuse func(c net.Conn, e *errcode.Error, method string)
	// Panicked is told about a handler panic (never its value).
	Panicked func()
	// Started receives the connection's context before the first request:
	// cancelled when the connection ends or the agent leaves mid-request.
	Started func(ctx context.Context)
}

func (s *Server) closing() bool { return s.Closing != nil && s.Closing() }

// CloseIdle closes the connections waiting for a request and reports how
// many are still busy (Shutdown polls it).
func (s *Server) CloseIdle() int { return s.conns.closeIdle() }

// innerConns tracks the connections being served, for Shutdown.
type innerConns struct {
	mu    sync.Mutex
	conns map[*innerConn]struct{}
}

func (ic *innerConns) add(c *innerConn) {
	ic.mu.Lock()
	if ic.conns == nil {
		ic.conns = make(map[*innerConn]struct{})
	}
	ic.conns[c] = struct{}{}
	ic.mu.Unlock()
}

func (ic *innerConns) remove(c *innerConn) {
	ic.mu.Lock()
	delete(ic.conns, c)
	ic.mu.Unlock()
}

// closeIdle closes the connections waiting for a request and reports how
// many connections are still busy.
func (ic *innerConns) closeIdle() (busy int) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for c := range ic.conns {
		switch {
		case c.active.Load():
			busy++
		case c.unpark(): // parked (park.go): its cleanup is ours to run
			go c.finish(false) // finish takes ic.mu
		default:
			_ = c.c.Close()
		}
	}
	return busy
}

// innerConn is one MITM'd agent connection.
type innerConn struct {
	s      *Server
	c      net.Conn
	h      Conn
	cancel context.CancelFunc // ends the connection's context
	lim    headLimiter
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	active atomic.Bool // serving a request (Shutdown waits for it)
	watch  watcher     // notices an agent gone during a slow request (watch.go)
	w      innerWriter // reused by each request
	first  firstByte   // the first byte of a request read while idle (idle.go)

	parking   *parking  // nil: this connection never parks (park.go)
	idleUntil time.Time // the idle timeout of the wait for the next request
	resumed   bool      // the loop goes on after parking: the wait is under way
	detached  *Detached // set by Detach during the handler (detach.go)

	// headMu orders "100 Continue", written by whoever first reads the
	// body (the transport's goroutine), against the final response head,
	// written by the pipeline's: whichever comes second sees headOut.
	headMu  sync.Mutex
	headOut bool
}

// sendContinue writes "100 Continue" unless the final head is out.
func (ic *innerConn) sendContinue() bool {
	ic.headMu.Lock()
	defer ic.headMu.Unlock()
	if ic.headOut {
		return false
	}
	_, _ = ic.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return ic.bw.Flush() == nil
}

// markHeadOut is called before the final head is written.
func (ic *innerConn) markHeadOut() {
	ic.headMu.Lock()
	ic.headOut = true
	ic.headMu.Unlock()
}

// releaseWriter returns the write buffer to the pool (it is empty: every
// response ends with a flush).
func (ic *innerConn) releaseWriter() {
	if ic.bw != nil {
		ic.bw.Reset(nil)
		innerWriters.Put(ic.bw)
		ic.bw = nil
	}
}

// headLimiter caps the bytes read while a request head is parsed.
type headLimiter struct {
	r      io.Reader
	remain int64
}

func (l *headLimiter) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

var (
	innerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	innerWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }} // one full TLS record
)

// ServeConn serves the requests of c until the agent closes it, a timeout
// or a framing error ends it, or the server shuts down. It closes c.
// On Linux, a connection idle between requests may be parked without a
// goroutine (park.go): ServeConn then returns while c is still open, and
// the loop goes on on a new goroutine when the next request arrives.
func (s *Server) ServeConn(c net.Conn, h Conn) {
	ic := &innerConn{s: s, c: c, h: h, remote: c.RemoteAddr().String()}
	// The parent of every upstream request made for this connection,
	// cancelled when the agent is gone or the connection ends.
	var ctx context.Context
	ctx, ic.cancel = context.WithCancel(context.Background())
	if h.Started != nil {
		h.Started(ctx)
	}
	ic.lim.r, ic.lim.remain = c, math.MaxInt64
	ic.br = innerReaders.Get().(*bufio.Reader)
	ic.br.Reset(&ic.lim)
	ic.w.ic = ic
	ic.parking = parkingOf(c, s.IdleTimeout)
	s.conns.add(ic)
	ic.serveLoop()
}

// serveLoop serves requests until the connection ends, then finishes it,
// or until another goroutine takes it over: it parked (resume calls
// serveLoop again) or its response was detached (Detached.Done does).
func (ic *innerConn) serveLoop() {
	out := outEnd
	defer func() {
		switch out {
		case outEnd:
			ic.finish(false)
		case outHijacked:
			ic.finish(true)
		} // outAway: ic is the poller's or the handler's, touch nothing
	}()
	for !ic.s.closing() {
		req, err := ic.readRequest()
		if err != nil {
			if out = outEnd; err == errParked {
				out = outAway
			}
			return
		}
		if out = ic.serve(req); out != outNext {
			return
		}
	}
	out = outEnd
}

// outcome is what the loop does after a request.
type outcome uint8

const (
	outNext     outcome = iota // read the next request
	outEnd                     // end the connection
	outHijacked                // the handler owns the connection
	outAway                    // another goroutine owns it (parked, detached)
)

// finish ends the connection: untracked, closed, its buffers back in
// their pools and its context cancelled. A hijacked connection belongs
// to the upgraded stream, with its buffers.
func (ic *innerConn) finish(hijacked bool) {
	defer ic.cancel()
	ic.s.conns.remove(ic)
	if hijacked {
		return
	}
	_ = ic.c.Close()
	ic.releaseReader()
	ic.releaseWriter()
}

// readRequest waits (idle timeout) for the next request and reads its head
// (header timeout, header cap). Malformed heads are answered 400/431.
// errParked: the connection waits in the poller (park.go); any other
// error ends it.
func (ic *innerConn) readRequest() (*http.Request, error) {
	if !ic.resumed {
		ic.active.Store(false)
		ic.releaseWriter() // an idle connection holds no write buffer
		ic.idleUntil = time.Now().Add(ic.s.IdleTimeout)
		if ic.parking == nil { // a parkable connection's wait sets its own (park.go)
			_ = ic.c.SetReadDeadline(ic.idleUntil)
		}
	}
	ic.resumed = false
	if err := ic.waitRequest(); err != nil { // nor a read buffer (idle.go)
		return nil, err
	}
	ic.active.Store(true)
	ic.headOut = false // no request is in flight: no reader of the body either
	ic.bw = innerWriters.Get().(*bufio.Writer)
	ic.bw.Reset(ic.c)
	_ = ic.c.SetReadDeadline(time.Now().Add(ic.s.ReadHeaderTimeout))
	ic.lim.remain = int64(ic.s.MaxHeaderBytes) + 4096
	req, err := http.ReadRequest(ic.br)
	tooLarge := ic.lim.remain <= 0
	ic.lim.remain = math.MaxInt64
	if err != nil {
		ic.refuseHead(err, tooLarge)
		return nil, err
	}
	if e := checkHead(req); e != nil {
		ic.refuse(e, req.Method)
		return nil, errRefused
	}
	req.RemoteAddr = ic.remote
	if req.Body != http.NoBody {
		_ = ic.c.SetReadDeadline(time.Time{}) // bodies may stream slowly
	}
	return req, nil
}

// checkHead refuses what net/http's server refuses beyond ReadRequest's own
// checks, and CONNECT inside a tunnel.
func checkHead(req *http.Request) *errcode.Error {
	switch {
	case req.ProtoAtLeast(1, 1) && req.Host == "": // ReadRequest moved Host there
		return badHead("HTTP/1.1 request without a Host header")
	case req.Method == http.MethodConnect:
		return badHead("CONNECT inside a tunnel")
	case req.ProtoMajor != 1:
		return badHead("unsupported protocol " + req.Proto)
	}
	return nil
}

func badHead(msg string) *errcode.Error {
	return errcode.New(http.StatusBadRequest, errcode.BadRequest, msg, "send a well-formed HTTP/1.1 request")
}

// refuseHead answers a head ReadRequest could not parse. Read errors
// (agent gone, timeout, the head guard's refusal) end the connection
// silently, as net/http does.
func (ic *innerConn) refuseHead(err error, tooLarge bool) {
	var ne net.Error
	switch {
	case tooLarge:
		ic.refuse(errcode.New(http.StatusRequestHeaderFieldsTooLarge, errcode.BadRequest,
			"request head larger than "+strconv.Itoa(ic.s.MaxHeaderBytes)+" bytes", "send smaller headers"), "?")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
	default:
		ic.refuse(badHead("malformed request head"), "?")
	}
}

// refuse answers e, records it and ends the connection. method is "?"
// when the head could not be parsed.
func (ic *innerConn) refuse(e *errcode.Error, method string) {
	// Nothing of a response is in ic.bw yet: the refusal goes straight out.
	if ic.h.Refuse != nil {
		ic.h.Refuse(ic.c, e, method)
	}
}

// serve runs one request through the pipeline and finishes its response.
func (ic *innerConn) serve(req *http.Request) outcome {
	var body *innerBody // nil without a body
	if req.Body == http.NoBody {
		// A request without a body reads nothing more until the next
		// head: its read buffer goes back to the pool while it runs (a
		// stream runs for minutes). The watch and Hijack take one again.
		ic.releaseIdleReader()
	} else {
		body = &innerBody{ic: ic, src: req.Body}
		if e := body.expect(req); e != nil {
			ic.refuse(e, req.Method)
			return outEnd
		}
		req.Body = body
	}
	w := &ic.w
	w.reset(req)
	ic.armWatch(body)
	ok := ic.run(w, req)
	if d := ic.detached; d != nil { // the response goes on without us (detach.go)
		return ic.letGo(d, body, req, ok)
	}
	return ic.complete(req, body, ok)
}

// complete finishes the response of req after its handler is done (ok:
// it returned normally); the outcome says what the loop does next.
func (ic *innerConn) complete(req *http.Request, body *innerBody, ok bool) outcome {
	ic.endWatch()
	w := &ic.w
	if !ok {
		if w.hijacked {
			return outHijacked
		}
		return outEnd
	}
	if w.hijacked {
		return outHijacked
	}
	keep := w.finish()
	if body != nil {
		keep = body.finish() && keep
	}
	if keep && !req.Close {
		return outNext
	}
	return outEnd
}

// run calls the pipeline, containing its panics: http.ErrAbortHandler (a
// stream cut mid-body) ends the connection quietly, anything else is
// logged without its value (it could hold request data).
func (ic *innerConn) run(w *innerWriter, req *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			ok = false
			if p != http.ErrAbortHandler && ic.h.Panicked != nil {
				ic.h.Panicked()
			}
		}
	}()
	ic.h.Handler.ServeHTTP(w, req)
	return true
}

// innerBody is a request body shared, under a lock, between the pipeline's
// transport (which may still read it after the response) and the loop
// (which discards what is left before the next request). It sends
// "100 Continue" on the first read when the agent asked for it.
type innerBody struct {
	ic   *innerConn
	mu   sync.Mutex
	src  io.ReadCloser
	cont bool // 100 Continue owed on first read
	eof  bool
	done bool
}

func (b *innerBody) expect(req *http.Request) *errcode.Error {
	ex := req.Header.Get("Expect")
	switch {
	case ex == "":
	case req.ProtoAtLeast(1, 1) && strings.EqualFold(ex, "100-continue"):
		b.cont = true
	default:
		return errcode.New(http.StatusExpectationFailed, errcode.BadRequest, "unsupported Expect: "+ex, "send Expect: 100-continue or none")
	}
	return nil
}

func (b *innerBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyClosed
	}
	if b.eof {
		return 0, io.EOF
	}
	if b.cont {
		if !b.ic.sendContinue() {
			// The response is out already (the upstream answered without
			// the body): the agent may never send it, so do not wait.
			return 0, errNoContinue
		}
		b.cont = false
	}
	n, err := b.src.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close is the transport's: the loop decides what happens to the rest.
func (b *innerBody) Close() error { return nil }

// finish ends the body's use by the pipeline and reads what is left, up to
// maxDiscard; false means the connection cannot be reused.
func (b *innerBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	if b.eof {
		return true
	}
	if b.cont { // the agent is still waiting for 100 Continue: never sent
		return false
	}
	_ = b.ic.c.SetReadDeadline(time.Now().Add(b.ic.s.ReadHeaderTimeout))
	n, err := io.CopyN(io.Discard, b.src, maxDiscard+1)
	return errors.Is(err, io.EOF) && n <= maxDiscard
}
