// Package conn is the connection plumbing of airlock's proxy port, below
// any protocol: sniffing a connection's first byte without a buffer
// ([Sniff]), the hand-fed listener of the front door ([Listener]), close
// hooks ([Tracked]), per-write deadlines ([WriteDeadline]) and serving one
// connection with net/http ([ServeOne]).
package conn

import (
	"net"
	"time"
)

// Sniffing holds no buffer. The first byte of a connection (which door,
// TLS or plain HTTP inside a tunnel) is read on its own and replayed by
// byteConn; a bufio.Reader here would pin 4 KiB per connection for its
// whole life, twice for a MITM'd one (agent connection and tunnel), and
// those sit idle in every keep-alive connection an agent holds.

// Sniff reads the first byte of c (waiting at most timeout) without
// consuming it: the returned conn replays it.
func Sniff(c net.Conn, timeout time.Duration) (byte, net.Conn, error) {
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, err := c.Read(b[:])
		if n == 1 {
			_ = c.SetReadDeadline(time.Time{})
			return b[0], &byteConn{Conn: c, first: b[0], pending: true}, nil
		}
		if err != nil {
			_ = c.SetReadDeadline(time.Time{})
			return 0, nil, err
		}
	}
}

// byteConn replays the sniffed first byte, then reads c directly.
type byteConn struct {
	net.Conn
	first   byte
	pending bool
}

func (c *byteConn) Read(p []byte) (int, error) {
	if !c.pending || len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.pending = false
	p[0] = c.first
	return 1, nil // the caller reads again for the rest (one more syscall per connection)
}

// NetConn returns the wrapped connection (h1's idle wait looks through).
func (c *byteConn) NetConn() net.Conn { return c.Conn }

// Buffered is 1 while the sniffed byte waits to be read again.
func (c *byteConn) Buffered() int {
	if c.pending {
		return 1
	}
	return 0
}
