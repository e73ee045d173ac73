package h1

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/airlock/airlock/proxy/errcode"
)

// ErrSmuggling ends an agent connection whose request head carries both
// Content-Length and Transfer-Encoding.
var ErrSmuggling = errors.New("request has both Content-Length and Transfer-Encoding")

// headGuard watches the raw bytes of an agent connection, before net/http
// parses them, for request heads with both Content-Length and
// Transfer-Encoding. net/http silently drops Content-Length when the
// request is chunked, so this is the only place the conflict is visible.
// Such a request is answered 400 BAD_REQUEST here and the connection ends:
// net/http sees a read error and never dispatches it.
//
// The guard follows HTTP/1.1 framing (Content-Length bodies, chunked bodies
// and trailers) to find each head of a keep-alive connection. After a
// CONNECT, or anything it cannot frame (which net/http refuses itself),
// it stops looking. After an Upgrade request it keeps looking until a 101
// Switching Protocols is actually written back on the connection: an
// Upgrade the upstream declines leaves an ordinary keep-alive connection.
type headGuard struct {
	net.Conn
	onRefuse func(c net.Conn, e *errcode.Error) // answers and records the refusal
	max      int                                // longest line followed; longer heads are net/http's 431

	st      guardState
	line    []byte
	started bool  // request line seen
	cl, te  bool  // framing headers seen in this head
	clen    int64 // Content-Length value (-1: invalid)
	chunked bool
	opaque  bool // CONNECT
	upgrade bool // Upgrade header in this head
	remain  int64
	refused bool

	awaiting101 atomic.Bool // an Upgrade request is waiting for its final answer (set by Read, cleared by Write)
	switched    atomic.Bool // a 101 went out: the connection is no longer HTTP (set by Write)
}

type guardState uint8

const (
	gHead      guardState = iota // reading a request head
	gBody                        // remain bytes of a Content-Length body
	gChunkSize                   // a chunk-size line
	gChunkData                   // remain bytes of chunk data
	gChunkEnd                    // the CRLF after chunk data
	gTrailer                     // trailer lines up to the blank line
	gOff                         // no longer inspecting
)

// Guard wraps an agent connection in the head guard; refuse answers a
// refused head on the raw connection (and records it), after which reads
// fail with ErrSmuggling.
func Guard(c net.Conn, refuse func(c net.Conn, e *errcode.Error)) net.Conn {
	return &headGuard{Conn: c, onRefuse: refuse, max: 64 << 10}
}

func (g *headGuard) Read(p []byte) (int, error) {
	if g.refused {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: ErrSmuggling}
	}
	n, err := g.Conn.Read(p)
	if g.switched.Load() {
		g.st = gOff
	}
	if n > 0 && g.st != gOff && g.feed(p[:n]) {
		g.refuse()
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: ErrSmuggling}
	}
	return n, err
}

// feed advances the framing state over b; true means refuse.
func (g *headGuard) feed(b []byte) bool {
	for len(b) > 0 && g.st != gOff {
		switch g.st {
		case gBody, gChunkData:
			k := int(min(int64(len(b)), g.remain))
			b, g.remain = b[k:], g.remain-int64(k)
			if g.remain == 0 && g.st == gBody {
				g.st = gHead
			} else if g.remain == 0 {
				g.st = gChunkEnd
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				g.line = append(g.line, b...)
				b = nil
			} else {
				g.line = append(g.line, b[:i]...)
				b = b[i+1:]
			}
			if len(g.line) > g.max {
				g.st = gOff
				return false
			}
			if i >= 0 {
				line := bytes.TrimSuffix(g.line, []byte("\r"))
				bad := g.onLine(line)
				g.line = g.line[:0]
				if bad {
					return true
				}
			}
		}
	}
	return false
}

// onLine handles one complete line in a line-oriented state.
func (g *headGuard) onLine(line []byte) bool {
	switch g.st {
	case gHead:
		return g.headLine(line)
	case gChunkSize:
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		switch {
		case err != nil || n < 0:
			g.st = gOff
		case n == 0:
			g.st = gTrailer
		default:
			g.st, g.remain = gChunkData, n
		}
	case gChunkEnd:
		g.st = gChunkSize
	case gTrailer:
		if len(line) == 0 {
			g.st = gHead
		}
	}
	return false
}

// headLine handles a line of a request head; at the blank line that ends
// it, it judges the framing headers and picks the body state.
func (g *headGuard) headLine(line []byte) bool {
	if !g.started {
		if len(line) == 0 {
			return false
		}
		g.started = true
		method, _, _ := bytes.Cut(line, []byte(" "))
		g.opaque = string(method) == http.MethodConnect
		return false
	}
	if len(line) > 0 {
		if line[0] == ' ' || line[0] == '\t' {
			return false // obs-fold continuation: net/http refuses or folds it
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		name, value = bytes.TrimSpace(name), bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (g.cl && n != g.clen) {
				n = -1
			}
			g.cl, g.clen = true, n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			g.te = true
			g.chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Upgrade")):
			g.upgrade = true
		}
		return false
	}
	if g.cl && g.te {
		return true
	}
	if g.upgrade && !g.opaque {
		g.awaiting101.Store(true) // off only once a 101 is written (Write)
	}
	switch {
	case g.opaque || g.te && !g.chunked || g.cl && g.clen < 0:
		g.st = gOff // tunnel, or framing net/http refuses
	case g.chunked:
		g.st = gChunkSize
	case g.clen > 0:
		g.st, g.remain = gBody, g.clen
	}
	g.started, g.cl, g.te, g.clen, g.chunked, g.opaque, g.upgrade = false, false, false, 0, false, false, false
	return false
}

// Write passes p to the agent; while an Upgrade request waits for its
// answer it reads the status of each response head written: 101 turns
// the guard off (the bytes that follow are the new protocol's), a final
// status ends the wait.
func (g *headGuard) Write(p []byte) (int, error) {
	if g.awaiting101.Load() && len(p) >= 12 && bytes.HasPrefix(p, []byte("HTTP/1.")) && p[8] == ' ' {
		switch code := p[9:12]; {
		case string(code) == "101":
			g.switched.Store(true)
			g.awaiting101.Store(false)
		case code[0] != '1':
			g.awaiting101.Store(false)
		}
	}
	return g.Conn.Write(p)
}

// refuse answers 400 on the raw connection and records the refusal.
func (g *headGuard) refuse() {
	g.refused = true
	e := errcode.New(http.StatusBadRequest, errcode.BadRequest, "request has both Content-Length and Transfer-Encoding",
		"send a body with exactly one of Content-Length or Transfer-Encoding: chunked")
	if g.onRefuse != nil {
		g.onRefuse(g.Conn, e)
	}
}

// NetConn returns the guarded connection (the idle wait looks through).
func (g *headGuard) NetConn() net.Conn { return g.Conn }

// Buffered is 0: the guard reads through and keeps no bytes.
func (g *headGuard) Buffered() int { return 0 }
