package proxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// connListener is a net.Listener fed by hand: the accept loop sniffs each
// connection and pushes HTTP proxy clients (CONNECT and plain http://) to
// the front net/http server through it.
type connListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push hands c to the server; it closes c if the listener is closed.
func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// sniff reads the first byte of c (waiting at most timeout) without
// consuming it: the returned conn replays it (sniffconn.go).
func sniff(c net.Conn, timeout time.Duration) (first byte, pc net.Conn, err error) {
	return sniffByte(c, timeout)
}

// trackedConn decrements the open-connection count once on Close.
type trackedConn struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
