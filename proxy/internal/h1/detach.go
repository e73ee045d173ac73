package h1

import (
	"net/http"
	"sync/atomic"
)

// # A response that goes on without its goroutine
//
// A relayed stream (SSE, MCP, LLM tokens) waits for the upstream most of
// its life, and the goroutine that waits holds a stack as deep as the
// whole pipeline (8-16 KiB: most of what a waiting stream cost). A
// handler that has written its head and has nothing to send until the
// upstream speaks can [Detach] its response and return from ServeHTTP:
// the loop then holds no goroutine for the connection until the handler
// calls [Detached.Done], on whatever goroutine the rest of the response
// was written on (the upstream's wake, package park). Done finishes the
// response (chunked end, trailers) and runs the loop on, on that
// goroutine: the next request, parking idle, or the connection's end.
//
// Until Done, the connection stays active (Shutdown waits for it) and
// the handler owns the response; a Close of the agent's connection from
// elsewhere (revocation, shutdown) cancels the connection's context,
// the parent of the upstream request, so that the stream's wait ends.

// Detached is a response whose handler returned before it was complete.
type Detached struct {
	ic   *innerConn
	body *innerBody // the request's body; nil without one
	req  *http.Request
	ok   bool // the handler returned normally (no panic)
	// refs counts the two sides still holding the connection: the loop's
	// goroutine until serve has let go, the handler until Done. The last
	// to let go runs the rest of the loop.
	refs  atomic.Int32
	abort atomic.Bool
	done  atomic.Bool
}

// Detach lets the handler return before its response is complete; it
// must then call Done exactly once. It returns nil when w cannot be
// detached: not the lean loop's writer, hijacked, no head written yet, or
// detached already.
func Detach(w http.ResponseWriter) *Detached {
	iw, ok := w.(*innerWriter)
	if !ok || iw.hijacked || !iw.wroteHeader || iw.ic.detached != nil {
		return nil
	}
	ic := iw.ic
	d := &Detached{ic: ic}
	d.refs.Store(2)
	ic.detached = d
	if p := ic.parking; p != nil {
		p.notify.NotifyClose(ic.cancel) // closed from elsewhere: end the upstream wait
	}
	return d
}

// Done ends a detached response: abort means it is incomplete and the
// connection must end (as http.ErrAbortHandler does). When the loop's
// goroutine has let go already, Done runs the loop on, on the caller's
// goroutine, and returns when the connection parks, ends or detaches
// again. A second Done does nothing.
func (d *Detached) Done(abort bool) {
	if !d.done.CompareAndSwap(false, true) {
		return
	}
	d.abort.Store(abort)
	if !d.release() {
		return // serve has not returned yet: it goes on from there
	}
	switch d.ic.completeDetached(d) {
	case outNext:
		d.ic.serveLoop()
	case outEnd:
		d.ic.finish(false)
	}
}

// release lets go of one side; true means the caller was the last.
func (d *Detached) release() bool { return d.refs.Add(-1) == 0 }

// letGo is serve's side: the handler returned (ok: without a panic)
// after detaching. It reports what the loop does next: outAway while the
// handler still writes (Done will go on), else the response's outcome.
func (ic *innerConn) letGo(d *Detached, body *innerBody, req *http.Request, ok bool) outcome {
	ic.detached = nil
	d.body, d.req, d.ok = body, req, ok
	if !d.release() {
		return outAway
	}
	return ic.completeDetached(d)
}

// completeDetached finishes a detached response once both sides let go.
func (ic *innerConn) completeDetached(d *Detached) outcome {
	if p := ic.parking; p != nil {
		p.notify.NotifyClose(nil)
	}
	return ic.complete(d.req, d.body, d.ok && !d.abort.Load())
}
