package transparent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// errNeedMore: the parser needs more bytes to decide.
var errNeedMore = errors.New("need more bytes")

// Peeked is the result of [Peek].
type Peeked struct {
	// Conn replays the peeked bytes, then reads the live connection.
	Conn net.Conn
	// ServerName is the SNI or Host ("" when none was found).
	ServerName string
	// TLS reports a TLS handshake record as the first byte.
	TLS bool
}

// Peek reads at most max bytes from c, for at most timeout, until the
// first bytes name a server: a complete TLS ClientHello (SNI) or a complete
// HTTP/1.x request head (Host). It stops early for any other protocol and
// at the limits; a client that sends nothing in time (a server-speaks-first
// protocol) gets an empty name, not an error. It fails only when the
// connection ends or breaks before any byte arrived.
func Peek(c net.Conn, max int, timeout time.Duration) (Peeked, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return Peeked{}, fmt.Errorf("peek: set deadline: %w", err)
	}
	buf := make([]byte, 0, min(max, 4096))
	var name string
	var rerr error
	for len(buf) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), max-len(buf)))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if done, nm := classify(buf); done {
			name = nm
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return Peeked{}, fmt.Errorf("peek: clear deadline: %w", err)
	}
	if len(buf) == 0 && rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
		return Peeked{}, fmt.Errorf("peek: connection closed before sending: %w", rerr)
	}
	p := Peeked{Conn: c, ServerName: name, TLS: len(buf) > 0 && buf[0] == recordTypeHandshake}
	if len(buf) > 0 {
		p.Conn = &replayConn{Conn: c, rest: buf}
	}
	return p, nil
}

// classify reports whether buf is enough to decide, and the name found.
func classify(buf []byte) (done bool, name string) {
	if len(buf) == 0 {
		return false, ""
	}
	var err error
	switch {
	case buf[0] == recordTypeHandshake:
		name, err = ParseSNI(buf)
	case looksHTTP(buf):
		name, err = ParseHost(buf)
	default:
		return true, ""
	}
	if errors.Is(err, errNeedMore) {
		return false, ""
	}
	return true, name
}

// replayConn reads the peeked bytes first, then the connection directly
// (no reader chain stays in the way of every later Read).
type replayConn struct {
	net.Conn
	rest []byte // peeked bytes not read yet (sent along by a hand-off, handoff.go)
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.rest)
	if c.rest = c.rest[n:]; len(c.rest) == 0 {
		c.rest = nil
	}
	return n, nil
}

// CloseWrite half-closes when the underlying connection can (TCP).
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// NetConn returns the underlying connection.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
