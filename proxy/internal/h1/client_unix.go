//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// socketPending peeks at the socket under c (through TLS and other
// wrappers that expose it with NetConn): pending is true when bytes or an
// EOF wait there; known is false when no socket could be reached.
func socketPending(c net.Conn) (pending, known bool) {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var b [1]byte
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		_, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return true, true
	}
	if errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) {
		return false, true
	}
	return true, true // data (n > 0), EOF (n == 0) or an error: not reusable
}

// waitSocket blocks until the socket under c has bytes or an EOF to read
// (or an error), without reading them; it returns nil at once when no
// socket can be reached.
func waitSocket(c net.Conn) error {
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
		return err
	}
	var b [1]byte
	// Only "nothing yet" waits: anything else is for the Read to see.
	return raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EWOULDBLOCK)
	})
}
