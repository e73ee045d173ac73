package proxy

import (
	"errors"
	"net/http"

	"github.com/airlock/airlock/proxy/internal/bufpool"
	"github.com/airlock/airlock/proxy/internal/h1"
)

// # A stream that waits without a goroutine
//
// A relayed stream (SSE, MCP, LLM tokens) waits for its upstream most of
// its life. Waiting on its goroutine, even holding no buffer, it held a
// stack as deep as the pipeline, 8-16 KiB: the largest part of what ten
// thousand quiet streams cost. Where the lean
// loop serves the agent (h1.Detach) and the lean client reads the
// upstream (ArmReadable, on the shared poller of package park), the
// relay instead hands its state to a detachedStream and lets the handler
// return: each time the upstream speaks, a worker that keeps its stack
// (h1's streamWakes) relays what it sent and arms the wait again, and the one that sees the end finishes
// what the handler would have (trailers, the ticket, the audit record)
// and gives the connection back to the loop (Detached.Done).
//
// Everything that ends a stream still ends it: the upstream's end or
// failure, the idle timeout (it closes the upstream connection, which
// ends the wait), the agent's connection closed from elsewhere (a
// revocation or shutdown cancels the connection's context, the parent of
// the upstream request), a write the agent no longer reads.

// detachedStream is one stream's relay loop, made resumable: the state
// a loop waiting on its goroutine would keep on its stack.
type detachedStream struct {
	s       *Server
	w       http.ResponseWriter // the pipeline's countingWriter
	resp    *http.Response
	d       *decision
	flusher http.Flusher
	src     parkable
	bp      *[]byte      // the read buffer, nil while waiting
	det     *h1.Detached // set at the first wait
	wake    func()       // j.resume, bound once
}

// errRelayPanic ends a detached stream whose relay panicked.
var errRelayPanic = errors.New("stream relay panicked")

// relayDetachable relays a stream that may wait without its goroutine:
// it returns when the stream ended or when the stream waits detached.
func (s *Server) relayDetachable(w http.ResponseWriter, resp *http.Response, d *decision, flusher http.Flusher, src parkable) {
	j := &detachedStream{s: s, w: w, resp: resp, d: d, flusher: flusher, src: src}
	j.wake = j.resume
	j.run()
}

// run relays what the upstream has sent; it returns when it waits
// (armed: a stream-wake worker runs it again) or when the stream ended.
func (j *detachedStream) run() {
	done, err := j.pump()
	if !done {
		return
	}
	if j.det == nil { // never waited detached: the handler's unwinding ends it
		j.s.endBody(j.w, j.resp, j.d, err)
		return
	}
	j.end(err)
}

// resume is run after a wait: the upstream has bytes, an end or an
// error for the Read.
func (j *detachedStream) resume() {
	j.bp = bufpool.Get(true)
	j.run()
}

// pump relays reads until the stream must wait. At the first wait it
// detaches the response from the loop's goroutine; done reports that the
// stream ended, with the read error to report.
func (j *detachedStream) pump() (done bool, err error) {
	defer func() {
		if j.det == nil {
			return // on the handler's goroutine: the loop contains a panic
		}
		if p := recover(); p != nil {
			j.putBuf()
			j.s.log.Error("panic relaying a stream", fieldAgent(j.d.agent), fieldHost(j.d.host))
			done, err = true, errRelayPanic
		}
	}()
	for {
		if j.bp == nil {
			if j.waitDetached() {
				return false, nil
			}
			j.bp = bufpool.Get(true)
		}
		n, rerr := j.resp.Body.Read(*j.bp)
		if done, err := sendChunk(j.w, j.flusher, (*j.bp)[:n], rerr); done {
			j.putBuf()
			return true, err
		}
		if n < len(*j.bp) && (j.src.park == nil || j.src.park()) {
			j.putBuf()
		}
	}
}

// waitDetached waits for the upstream: true means armed (run comes back
// on another goroutine), false that a Read need not wait, or that it
// waited here where the response cannot be detached.
func (j *detachedStream) waitDetached() bool {
	if j.src.arm == nil { // a body that can only wait on a goroutine
		_ = j.src.wait()
		return false
	}
	if j.det == nil {
		if j.det = h1.Detach(unwrapCounting(j.w)); j.det == nil {
			_ = j.src.wait() // not the lean loop's: wait on this goroutine
			return false
		}
		j.d.detached = true
	}
	return j.src.arm(j.wake)
}

func (j *detachedStream) putBuf() {
	if j.bp != nil {
		bufpool.Put(j.bp)
		j.bp = nil
	}
}

// end finishes a detached stream as the handler would have: the body's
// end (trailers) or failure, the ticket, the audit record, then the
// response's end and the connection back to the loop.
func (j *detachedStream) end(readErr error) {
	s, d := j.s, j.d
	s.endBody(j.w, j.resp, d, readErr)
	d.ev.ticket.Abort() // no-op once a metered body has ended it
	if cw, ok := j.w.(*countingWriter); ok {
		s.endPipeline(d, cw)
	}
	j.det.Done(d.aborted) // endBody marked any read error (a panic too) aborted
}

// unwrapCounting is the writer under the pipeline's countingWriter.
func unwrapCounting(w http.ResponseWriter) http.ResponseWriter {
	if cw, ok := w.(*countingWriter); ok {
		return cw.ResponseWriter
	}
	return w
}
