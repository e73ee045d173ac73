package h1

import (
	"errors"
	"os"
	"sync"
	"time"
)

// An agent that gives up on a slow request (closes its connection while
// airlock waits for the upstream) should not leave the upstream working
// for nobody. net/http noticed with a reader goroutine on every request;
// the lean loop only starts one for requests still running after
// watchDelay, once their body has been read: a read then returning EOF
// means the agent is gone, and the connection's context, the parent of
// every upstream request made for it, is cancelled.

const watchDelay = time.Second

// WatchDelay is how long a request runs before the loop watches for the
// agent leaving (tests wait past it).
const WatchDelay = watchDelay

type watchState uint8

const (
	watchIdle    watchState = iota // no request, or the watch ended
	watchArmed                     // a request runs; the timer may start a watch
	watchReading                   // the watcher goroutine reads the connection
)

// watcher is the disconnect watch of one innerConn.
type watcher struct {
	mu    sync.Mutex
	state watchState
	body  *innerBody // the request's body; nil without one
	timer *time.Timer
	done  chan struct{} // closed when the watcher goroutine returns
}

// armWatch starts the delay for the request about to run; body is nil
// when it has none.
func (ic *innerConn) armWatch(body *innerBody) {
	w := &ic.watch
	w.mu.Lock()
	w.state, w.body = watchArmed, body
	w.mu.Unlock()
	if w.timer == nil {
		w.timer = time.AfterFunc(watchDelay, ic.startWatch)
	} else {
		w.timer.Reset(watchDelay)
	}
}

// startWatch runs when a request is still going after watchDelay.
func (ic *innerConn) startWatch() {
	w := &ic.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != watchArmed {
		return // the request finished
	}
	if w.body != nil && !w.body.atEOF() {
		w.timer.Reset(watchDelay) // the transport still reads the body: later
		return
	}
	w.state, w.done = watchReading, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		// The watcher owns the read buffer until endWatch has waited for
		// it; a bodiless request released it (loop.go).
		_, err := ic.reader().Peek(1) // data: a pipelined request, left buffered
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			ic.cancel() // the agent is gone
		}
		ic.releaseIdleReader() // a stream outlives its watch: hold no buffer
	}(w.done)
}

// endWatch stops the watch before the connection is read or handed over
// again; it interrupts a watcher that is reading and waits for it.
func (ic *innerConn) endWatch() {
	w := &ic.watch
	w.mu.Lock()
	state, done := w.state, w.done
	w.state, w.body, w.done = watchIdle, nil, nil
	w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
	if state == watchReading {
		_ = ic.c.SetReadDeadline(time.Unix(1, 0))
		<-done
	}
}

func (b *innerBody) atEOF() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}
