package h1

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/airlock/airlock/proxy/internal/deep"
	"github.com/airlock/airlock/proxy/internal/park"
)

// Parking idle connections. A connection waiting for its next request
// used to keep its goroutine blocked in a one-byte Read, and that
// goroutine's stack (8 KiB once a request has run on it) was a third of
// what an idle connection cost. Now, once a connection has been idle for
// parkAfter with nothing buffered anywhere, its goroutine returns and the
// socket waits in the shared poller (package park); when it becomes
// readable (a request, the agent's close, an error) a worker (connResumes)
// takes the loop up again (serveLoop).
//
// Nothing may be buffered above the socket, or the poller would wait for
// bytes that already arrived: the loop's read buffer is released (only
// when empty), and every wrapper between the served connection and the
// socket must be known: crypto/tls (its records), or a layer that says
// what it holds (Layer). The wait before parking is itself the proof for
// TLS: a one-byte Read that runs into its deadline returned no buffered
// plaintext or complete record (crypto/tls does not keep a timeout as the
// connection's error, and a partial record stays in its buffer while the
// rest is still to come on the socket).
//
// A parked connection has no goroutine to notice a Close from elsewhere
// (a revoked agent, a shutdown), and closing a socket drops it from the
// poller without an event: a connection is parked only when some layer
// tells of its Close first (closeNotifier, conn.Tracked in airlock), and
// that Close, CloseIdle and the idle timer race the poller through
// park.Waiter.Cancel: exactly one of them takes the connection back and
// runs the loop's cleanup (finish).

// parkAfter is how long a connection waits for its next request on its
// goroutine before it parks: a keep-alive connection in use never parks.
var parkAfter = time.Second

// connResumes runs the loops of parked connections that woke. A woken
// loop serves the request that woke it, deep in the stack (TLS, the
// handler, the upstream), then waits parkAfter on its goroutine and
// parks again: on a new goroutine every wake grew a fresh stack by
// copying it, as a stream's events did (streamWakes). An agent that
// pauses longer than parkAfter between requests, as one does while its
// model thinks, woke one for every request. A worker keeps the stack it
// grew; the loop holds it until the connection parks or ends, and when
// all are busy the next wake gets a goroutine of its own, as before.
var connResumes = deep.New(256, 10*time.Second)

// Layer is a connection wrapper the idle wait may look through: NetConn
// is the connection below, Buffered the bytes a Read would return without
// reading it.
type Layer interface {
	NetConn() net.Conn
	Buffered() int
}

// closeNotifier is a layer that runs f before its Close closes the socket.
type closeNotifier interface {
	NotifyClose(f func())
}

var errParked = errors.New("connection parked")

// parking is what a parkable connection needs to park.
type parking struct {
	raw    syscall.RawConn
	layers []Layer // checked empty before each park
	notify closeNotifier

	current atomic.Pointer[parked] // the wait in progress; nil or ended when not parked
}

// parked is one stay in the poller: its wait and its idle timeout. Each
// stay has its own, so a late timer or Close of an earlier stay can only
// lose its Cancel.
type parked struct {
	w *park.Waiter
	t *time.Timer
}

// parkingOf looks through c's layers down to the TCP socket; nil means c
// cannot park (an unknown wrapper, no close notice, no poller).
func parkingOf(c net.Conn, idle time.Duration) *parking {
	if idle <= 0 {
		return nil
	}
	p := &parking{}
	for range 16 {
		switch x := c.(type) {
		case *net.TCPConn:
			if p.notify == nil || !park.Supported() { // Supported starts the poller
				return nil
			}
			rc, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			p.raw = rc
			return p
		case *tls.Conn:
			if !x.ConnectionState().HandshakeComplete {
				return nil // a wait with a deadline must not cut a handshake
			}
			c = x.NetConn() // its buffered records: see the wait before parking
		case Layer:
			if n, ok := x.(closeNotifier); ok && p.notify == nil {
				p.notify = n
			}
			p.layers = append(p.layers, x)
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// empty reports whether no layer holds bytes.
func (p *parking) empty() bool {
	for _, l := range p.layers {
		if l.Buffered() > 0 {
			return false
		}
	}
	return true
}

// idleRead reads the first byte of the next request into b. A parkable
// connection reads with a deadline parkAfter away and, when that passes
// with nothing read, parks: errParked means the goroutine must return
// without touching ic again.
func (ic *innerConn) idleRead(b []byte) (int, error) {
	p := ic.parking
	if p == nil {
		return ic.c.Read(b)
	}
	d := time.Now().Add(parkAfter)
	if d.After(ic.idleUntil) {
		d = ic.idleUntil
	}
	_ = ic.c.SetReadDeadline(d)
	n, err := ic.c.Read(b)
	if n > 0 || err == nil {
		return n, err
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !time.Now().Before(ic.idleUntil) {
		return n, err
	}
	_ = ic.c.SetReadDeadline(ic.idleUntil)
	if ic.park() {
		return 0, errParked
	}
	return ic.c.Read(b) // could not park: wait here, as without a poller
}

// park hands the idle connection to the poller; false means it could not
// (the caller keeps waiting on its goroutine).
func (ic *innerConn) park() bool {
	p := ic.parking
	if ic.br != nil || ic.first.pending || !p.empty() || ic.s.closing() {
		return false
	}
	pk := &parked{}
	pk.w = park.NewWaiter(func() { ic.resume(pk) }, connResumes.Go)
	pk.t = time.AfterFunc(time.Until(ic.idleUntil), func() { // the idle timeout
		if pk.w.Cancel() {
			ic.finish(false)
		}
	})
	p.current.Store(pk)
	p.notify.NotifyClose(func() { // closed from elsewhere (revocation, shutdown)
		if pk.w.Cancel() {
			pk.t.Stop()
			go ic.finish(false) // not on the closer's goroutine: it may hold locks finish takes
		}
	})
	if err := pk.w.Arm(p.raw); err != nil && pk.w.Cancel() {
		pk.t.Stop()
		p.notify.NotifyClose(nil)
		return false
	}
	return true // from here on, ic belongs to whoever ends the wait
}

// unpark takes a parked connection back (CloseIdle); true means the
// caller now owns it and must finish it.
func (ic *innerConn) unpark() bool {
	if ic.parking == nil {
		return false
	}
	pk := ic.parking.current.Load()
	if pk == nil || !pk.w.Cancel() {
		return false
	}
	pk.t.Stop()
	return true
}

// resume runs on a worker of connResumes when a parked connection is
// readable: the loop goes on, reading the request that woke it.
func (ic *innerConn) resume(pk *parked) {
	pk.t.Stop()
	ic.parking.notify.NotifyClose(nil)
	ic.resumed = true
	ic.serveLoop()
}
