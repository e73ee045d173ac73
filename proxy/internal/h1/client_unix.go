//go:build unix

package h1

import (
	"net"
	"syscall"
)

// socketPending peeks at the socket under c (through TLS and other
// wrappers that expose it with NetConn): pending is true when bytes or an
// EOF wait there; known is false when no socket could be reached.
func socketPending(c net.Conn) (pending, known bool) {
	p := newPeeker(c)
	if p == nil {
		return false, false
	}
	return p.pending(), true
}

// peeker peeks at one connection's socket; made once per connection, its
// check allocates nothing.
type peeker struct {
	raw    syscall.RawConn
	fn     func(fd uintptr) bool // p.peek, bound once
	waitFn func(fd uintptr) bool // p.ready, bound once
	b, wb  [1]byte
	errn   syscall.Errno
}

// newPeeker returns the peeker of the socket under c, nil when there is
// no socket to reach.
func newPeeker(c net.Conn) *peeker {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{raw: raw}
	p.fn, p.waitFn = p.peek, p.ready
	return p
}

func (p *peeker) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.errn = 0
	if err != nil {
		p.errn = syscall.EIO
		if e, ok := err.(syscall.Errno); ok {
			p.errn = e
		}
	}
	return true // never wait
}

// pending: bytes, an EOF or an error wait on the socket (not reusable).
func (p *peeker) pending() bool {
	if err := p.raw.Read(p.fn); err != nil {
		return true
	}
	return p.errn != syscall.EAGAIN && p.errn != syscall.EWOULDBLOCK
}

// wait blocks until bytes, an EOF or an error wait on the socket,
// without reading them.
func (p *peeker) wait() error { return p.raw.Read(p.waitFn) }

// ready is wait's check: only "nothing yet" waits.
func (p *peeker) ready(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), p.wb[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
