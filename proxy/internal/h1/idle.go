package h1

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// headerMaps are the response header maps of requests in flight.
var headerMaps = sync.Pool{New: func() any { return make(http.Header, 16) }}

// Buffers of idle connections. Agents keep many keep-alive connections
// open and idle; each held a 4 KiB read buffer and a 16 KiB write buffer
// while it waited. The write buffer goes back to its pool after every
// response and after every flush of a stream (writer.go); the read buffer
// goes back while the loop waits for the next request: the first byte is
// read on its own, and the buffer taken again replays it.

// writer is the connection's write buffer, taken from the pool if the
// last flush returned it.
func (ic *innerConn) writer() *bufio.Writer {
	if ic.bw == nil {
		ic.bw = innerWriters.Get().(*bufio.Writer)
		ic.bw.Reset(ic.c)
	}
	return ic.bw
}

// reader is the connection's read buffer, taken from the pool if it was
// released.
func (ic *innerConn) reader() *bufio.Reader {
	if ic.br == nil {
		ic.br = innerReaders.Get().(*bufio.Reader)
		ic.br.Reset(&ic.lim)
	}
	return ic.br
}

// releaseReader returns the read buffer to the pool, whatever it holds.
func (ic *innerConn) releaseReader() {
	if ic.br != nil {
		ic.br.Reset(nil)
		innerReaders.Put(ic.br)
		ic.br = nil
	}
}

// releaseIdleReader returns the read buffer to the pool when it holds
// nothing (a pipelined request stays where it is).
func (ic *innerConn) releaseIdleReader() {
	if ic.br != nil && ic.br.Buffered() == 0 {
		ic.releaseReader()
	}
}

// waitRequest waits for the first byte of the next request. With nothing
// buffered it returns the read buffer to the pool while it waits.
// It also drops what the last request left reachable (the request, its
// headers, the response header map).
func (ic *innerConn) waitRequest() error {
	ic.w.req = nil
	if ic.br != nil && ic.br.Buffered() > 0 {
		return nil // a pipelined request is already here
	}
	ic.releaseReader()
	if ic.w.h != nil { // ~1.5 KiB of map buckets: pooled, not held idle
		clear(ic.w.h)
		headerMaps.Put(ic.w.h)
		ic.w.h = nil
	}
	var b [1]byte
	var err error
	for n := 0; n == 0 && err == nil; {
		n, err = ic.idleRead(b[:]) // may park (park.go)
		if n == 1 {
			ic.first = firstByte{Conn: ic.c, b: b[0], pending: true}
			ic.lim.r = &ic.first
		}
	}
	if err == errParked {
		return err // ic is the poller's now: touch nothing
	}
	ic.br = innerReaders.Get().(*bufio.Reader)
	ic.br.Reset(&ic.lim)
	return err
}

// firstByte replays the byte waitRequest read, then reads the connection.
type firstByte struct {
	net.Conn
	b       byte
	pending bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	if !f.pending || len(p) == 0 {
		return f.Conn.Read(p)
	}
	f.pending = false
	p[0] = f.b
	return 1, nil
}
