package usage

import "net/http"

// A stream that waits holding nothing, metered
//
// Between the events of a stream the proxy's relay waits for the upstream
// connection to be readable before it takes a read buffer (a stream
// waits most of its life), and it relays each read with one write and one
// flush. It can do that only through a body that says when a Read need
// not wait: a [WaitingBody]. Through a body that cannot, the relay reads
// with a small buffer, and an upstream burst longer than that (the
// events after the first) costs the agent's connection a second write,
// TLS record and flush.

// Waiter is a body that can wait until a Read need not block, holding no
// buffer (the proxy's upstream client body).
type Waiter interface{ WaitReadable() error }

// Parker is a body between the meter and a [Waiter] that holds buffers of
// its own (the scrubber): Park hands them back while it has nothing to
// return and reports whether a Read would now reach the Waiter (false:
// bytes or an error are waiting in it).
type Parker interface{ Park() bool }

// WaitingBody is the metering [Body] of a response whose source can wait
// holding no buffer ([Ticket.WrapWaiting]).
type WaitingBody struct {
	*Body
	src  Waiter
	park Parker // nil: nothing between the meter and src holds bytes
	read bool   // Read was called: the parker may hold buffers to hand back
}

// WrapWaiting is [Ticket.Wrap] for a response whose body, as given, is or
// reads from src (through park, when not nil, and nothing else that holds
// bytes): resp.Body becomes a *[WaitingBody]. A nil src is Wrap.
func (t *Ticket) WrapWaiting(resp *http.Response, src Waiter, park Parker) {
	if t == nil || resp == nil {
		return
	}
	t.Wrap(resp)
	if src == nil {
		return
	}
	t.waiting = WaitingBody{Body: &t.body, src: src, park: park}
	resp.Body = &t.waiting
}

// Read implements io.Reader.
func (w *WaitingBody) Read(p []byte) (int, error) {
	w.read = true
	return w.Body.Read(p)
}

// WaitReadable blocks until a Read of the body need not wait on the
// upstream: at once when the meter holds bytes to return, an error or an
// end, or when the parker holds bytes; else it waits in the source,
// holding no buffer (the meter's and the parker's handed back). An error is the
// source's: the next Read reports what happened.
func (w *WaitingBody) WaitReadable() error {
	if w.ready() {
		return nil
	}
	w.Body.putBuf() // strip mode's read buffer: taken again by the next Read
	// before the first Read the parker's buffers are fresh: handing them
	// back only to take them again would cost a pool round trip
	if w.park != nil && w.read && !w.park.Park() {
		return nil
	}
	return w.src.WaitReadable()
}

// Armer is a [Waiter] that can also wait without a goroutine: false
// means a Read need not wait, true that ready runs, once, on another
// goroutine when it need not (the proxy's upstream client body).
type Armer interface {
	ArmReadable(ready func()) bool
}

// ArmReadable is [WaitingBody.WaitReadable] without a goroutine, where
// the source can ([Armer]); a source that cannot is waited for here,
// and false returned.
func (w *WaitingBody) ArmReadable(ready func()) bool {
	if w.ready() {
		return false
	}
	w.Body.putBuf()
	if w.park != nil && w.read && !w.park.Park() {
		return false
	}
	a, ok := w.src.(Armer)
	if !ok {
		_ = w.src.WaitReadable()
		return false
	}
	return a.ArmReadable(ready)
}

// ready reports whether a Read would return without reading the source:
// the body ended, or (strip mode) relayed bytes or an error wait in the
// meter.
func (w *WaitingBody) ready() bool {
	b := w.Body
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.finished || b.strip && (b.sse == nil || b.off < len(b.sse.out) || b.err != nil)
}
