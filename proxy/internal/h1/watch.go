package h1

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/airlock/airlock/proxy/internal/park"
)

// An agent that gives up on a slow request (closes its connection while
// airlock waits for the upstream) should not leave the upstream working
// for nobody. net/http noticed with a reader goroutine on every request;
// the lean loop only watches requests still running after watchDelay,
// once their body has been read: a read then returning EOF means the
// agent is gone, and the connection's context, the parent of every
// upstream request made for it, is cancelled. A connection that can park
// (park.go) waits for the agent's next bytes in the shared poller, with
// no goroutine and no read buffer, for as long as the request runs (ten
// thousand streams opened at once would otherwise hold ten thousand
// watcher goroutines and 4 KiB read buffers); only when bytes or an end
// arrive does a goroutine read them. Elsewhere a goroutine reads, until
// the head timeout's deadline.

const watchDelay = time.Second

// WatchDelay is how long a request runs before the loop watches for the
// agent leaving (tests wait past it).
const WatchDelay = watchDelay

type watchState uint8

const (
	watchIdle    watchState = iota // no request, or the watch ended
	watchArmed                     // a request runs; the timer may start a watch
	watchParked                    // the socket waits in the poller for the agent's next bytes
	watchReading                   // the watcher goroutine reads the connection
)

// watcher is the disconnect watch of one innerConn.
type watcher struct {
	mu    sync.Mutex
	state watchState
	body  *innerBody // the request's body; nil without one
	timer *time.Timer
	wait  *park.Waiter  // the poller's wait, while watchParked
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
	if ic.watchParked() {
		return
	}
	ic.startWatcher()
}

// startWatcher starts the goroutine that reads the connection for the
// agent's end (w.mu held).
func (ic *innerConn) startWatcher() {
	w := &ic.watch
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

// watchParked hands the watch to the poller (w.mu held); false means it
// cannot: the connection does not park, or bytes are buffered above the
// socket (a pipelined request: the agent is there).
func (ic *innerConn) watchParked() bool {
	p := ic.parking
	if p == nil || (ic.br != nil && ic.br.Buffered() > 0) || ic.first.pending || !p.empty() {
		return false
	}
	w := &ic.watch
	var pw *park.Waiter
	pw = park.NewWaiter(func() { ic.watchWoke(pw) }, nil) // rare: a goroutine of its own
	w.state, w.wait = watchParked, pw
	if err := pw.Arm(p.raw); err != nil && pw.Cancel() {
		w.state, w.wait = watchArmed, nil
		return false
	}
	return true
}

// watchWoke runs when the agent's socket became readable during a watched
// request: a goroutine reads what came (an end, a TLS alert, a pipelined
// request), with a deadline for a record that arrives in pieces.
func (ic *innerConn) watchWoke(pw *park.Waiter) {
	w := &ic.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != watchParked || w.wait != pw {
		return // the request ended first
	}
	w.wait = nil
	_ = ic.c.SetReadDeadline(time.Now().Add(ic.s.ReadHeaderTimeout))
	ic.startWatcher()
}

// endWatch stops the watch before the connection is read or handed over
// again; it interrupts a watcher that is reading and waits for it.
func (ic *innerConn) endWatch() {
	w := &ic.watch
	w.mu.Lock()
	state, done, pw := w.state, w.done, w.wait
	w.state, w.body, w.done, w.wait = watchIdle, nil, nil, nil
	w.mu.Unlock()
	if pw != nil {
		pw.Cancel() // lost to the poller: watchWoke finds the watch over
	}
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
