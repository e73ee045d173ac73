package conn

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener fed by hand: the accept loop sniffs each
// connection and pushes HTTP proxy clients (CONNECT and plain http://) to
// the front net/http server through it.
type Listener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewListener returns a Listener reporting addr.
func NewListener(addr net.Addr) *Listener {
	return &Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept is net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Push hands c to the server; it closes c if the listener is closed.
func (l *Listener) Push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Close is net.Listener.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is net.Listener.
func (l *Listener) Addr() net.Addr { return l.addr }

// Tracked runs OnClose once, at the first Close (the open-connection
// count's decrement). It is also where a connection parked without a
// goroutine (h1's idle wait) hears that someone closes it: closing a
// socket removes it from the poller without an event.
type Tracked struct {
	net.Conn
	once        sync.Once
	OnClose     func()
	beforeClose atomic.Pointer[func()]
}

// Close runs the NotifyClose hook and OnClose (the first time) and closes
// the connection.
func (c *Tracked) Close() error {
	if f := c.beforeClose.Swap(nil); f != nil {
		(*f)() // before the socket closes, outside once: f may Close again
	}
	c.once.Do(c.OnClose)
	return c.Conn.Close()
}

// NotifyClose makes the next Close run f first, while the socket is still
// open; nil clears it. The last f set wins.
func (c *Tracked) NotifyClose(f func()) {
	if f == nil {
		c.beforeClose.Store(nil)
		return
	}
	c.beforeClose.Store(&f)
}

// NetConn returns the wrapped connection (h1's idle wait looks through).
func (c *Tracked) NetConn() net.Conn { return c.Conn }

// Buffered is 0: Tracked holds no bytes.
func (c *Tracked) Buffered() int { return 0 }

// IsClosed reports whether err says the listener was closed.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
