package h1

import (
	"bufio"
	"errors"
	"net"
	"time"

	"github.com/airlock/airlock/proxy/internal/deep"
	"github.com/airlock/airlock/proxy/internal/park"
)

// # Waiting for a stream's next bytes without a buffer
//
// A relayed stream (SSE, MCP, LLM tokens) waits for the upstream most of
// its life, and a Read waits holding every buffer it was given on the way
// down (the relay's, the scrubber's). [clientBody.WaitReadable] waits
// first, holding none: the relay calls it before it takes its buffers.

// WaitReadable blocks until a Read of b need not wait on the connection:
// bytes (or an end) are in the read buffer, in TLS's record buffers or on
// the socket, or b has ended. It holds no buffer while it waits. An error
// means it could not wait (the connection was closed under it): the next
// Read reports what happened.
func (b *clientBody) WaitReadable() error {
	if b.done.Load() {
		return nil
	}
	c := b.x.c
	if c.br.Buffered() > 0 || !c.tlsHoldsNothing() {
		return nil // bytes, an end or a failure: Read has it at once
	}
	p := c.socketPeeker()
	if p == nil {
		return nil // no socket to wait on: the Read waits
	}
	c.lendReader()
	err := p.wait()
	c.takeReader()
	return err
}

// tlsHoldsNothing reports whether a Read would have to wait for the
// socket: neither a whole record nor decrypted bytes are held in crypto/tls
// (a record it holds only part of needs the socket for the rest). Asked
// through [TLSSocket] where the connection has one, else with a deadline
// in the past (a timeout is not sticky in crypto/tls).
func (c *clientConn) tlsHoldsNothing() bool {
	if s := probeOf(c.nc); s != nil {
		s.probing = true
		_, err := c.br.Peek(1)
		s.probing = false
		return err == errProbe
	}
	if err := c.nc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return false
	}
	_, err := c.br.Peek(1)
	if c.nc.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}

// lendReader hands the empty read buffer back to its pool while c waits.
// The body's readers (chunked, length-limited) hold c.br itself, so the
// Reader stays and its contents move to a shell that goes to the pool.
func (c *clientConn) lendReader() {
	shell := new(bufio.Reader)
	*shell = *c.br
	*c.br = bufio.Reader{}
	shell.Reset(nil)
	clientReaders.Put(shell)
}

// takeReader gives c.br a pooled buffer again after lendReader; the
// pooled Reader it came in is dropped (it would share the buffer).
func (c *clientConn) takeReader() {
	*c.br = *clientReaders.Get().(*bufio.Reader)
	c.br.Reset(&c.rd)
}

// ArmReadable is WaitReadable without a goroutine: false means a Read
// need not wait (or no poller can wait for it: the Read waits), true
// means ready runs, once, on another goroutine (a worker of
// streamWakes), when it need not: bytes or an end reached the
// connection, or it was closed (a timeout, the request's context, the
// relay's Close). Nothing is held meanwhile: no read buffer, no goroutine. The
// connection keeps one park.Slot for all its waits.
func (b *clientBody) ArmReadable(ready func()) bool {
	if b.done.Load() || !park.Supported() {
		return false
	}
	c := b.x.c
	if c.br.Buffered() > 0 || !c.tlsHoldsNothing() {
		return false
	}
	slot := c.streamSlot()
	if slot == nil {
		return false
	}
	c.lendReader()
	c.ready = ready
	if err := slot.Wait(c.wakeFn); err != nil { // closed (ErrSlotClosed) or not registrable
		c.ready = nil
		c.takeReader()
		return false
	}
	return true
}

// streamWakes runs the wakes of waiting streams. A wake relays what
// arrived (a TLS read and a TLS write, deep in the stack) and waits
// again: a short job, once per event. On a new goroutine every event grew
// a fresh stack by copying it, twice or more: runtime.newstack was 6 % of
// airlock's CPU on streams of 50 events 5 ms apart, and 21 % with the
// meter stripping the usage chunk (its reads go deeper); under 1 % on
// workers (airlock-bench meter --chunks 50 --gap 5ms --concurrency 200
// --profile DIR). A worker keeps the stack it grew. A wake that blocks (a
// write to an agent that does not read) holds its worker: when all are
// busy the next wake gets a goroutine of its own, as before. The poller
// hands out a batch of events before any of their workers runs (one
// CPU), so the pool is sized for a batch, not for the CPUs; an idle
// worker leaves after 10 s with its stack (~16 KiB).
var streamWakes = deep.New(256, 10*time.Second)

// streamSlot is c's place in the poller, made at its first wait; nil
// when c has no socket to wait on or is closed.
func (c *clientConn) streamSlot() *park.Slot {
	if s := c.slot.Load(); s != nil {
		return s
	}
	p := c.socketPeeker()
	if p == nil || c.dead.Load() {
		return nil
	}
	c.wakeFn = c.wake
	s := park.NewSlot(p.raw, streamWakes.Go)
	if !c.slot.CompareAndSwap(nil, s) {
		return c.slot.Load()
	}
	if c.dead.Load() { // closed as the slot was made: close may have missed it
		s.Close()
	}
	return s
}

// wake runs on its own goroutine once the wait ended (the poller fired,
// or close cancelled it): the read buffer comes back before ready reads.
func (c *clientConn) wake() {
	ready := c.ready
	c.ready = nil
	c.takeReader()
	ready()
}

// unparkStream takes c's socket out of the poller before c is closed; a
// stream waiting on it then runs its ready, which reads what the close
// left (an error).
func (c *clientConn) unparkStream() {
	if s := c.slot.Load(); s != nil && s.Close() {
		go c.wake()
	}
}
