package conn

import (
	"net"
	"sync/atomic"
	"time"
)

// WriteDeadline bounds every Write on an agent connection: an agent
// that stops reading a response fails the write after at most D instead
// of pinning the forwarding goroutine and its buffers, while a long stream
// that keeps moving is never cut (unlike http.Server's WriteTimeout, which
// bounds the whole response). The deadline is pushed forward only once
// less than D/2 of it is left, so a busy connection does not reset a timer
// on every write; a stalled write fails after between D/2 and D.
type WriteDeadline struct {
	net.Conn
	D     time.Duration
	until atomic.Int64 // the deadline set, in Unix nanoseconds
}

// Write writes p, pushing the deadline forward when it is near.
func (c *WriteDeadline) Write(p []byte) (int, error) {
	now := time.Now()
	if c.until.Load()-now.UnixNano() < int64(c.D/2) {
		deadline := now.Add(c.D)
		c.until.Store(deadline.UnixNano())
		_ = c.Conn.SetWriteDeadline(deadline)
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline sets a deadline of the caller's (a refusal's short
// one); the next Write replaces it once it is near.
func (c *WriteDeadline) SetWriteDeadline(t time.Time) error {
	c.until.Store(t.UnixNano())
	return c.Conn.SetWriteDeadline(t)
}

// NetConn returns the wrapped connection (h1's idle wait looks through).
func (c *WriteDeadline) NetConn() net.Conn { return c.Conn }

// Buffered is 0: WriteDeadline holds no bytes.
func (c *WriteDeadline) Buffered() int { return 0 }
