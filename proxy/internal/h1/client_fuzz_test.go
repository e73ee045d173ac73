package h1

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// memConn is an upstream connection that answers with fixed bytes and
// swallows the request.
type memConn struct {
	r        *bytes.Reader
	deadline time.Time
	closed   bool
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.r.Len() == 0 && !c.deadline.IsZero() && !time.Now().Before(c.deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	return c.r.Read(p)
}
func (c *memConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *memConn) Close() error                       { c.closed = true; return nil }
func (c *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { c.deadline = t; return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzClientResponse feeds arbitrary upstream bytes to the lean client.
// Properties: no panic; a body never yields more bytes than the upstream
// sent; and a connection is pooled only when the response used every byte
// the upstream sent (nothing is left for the next request to read).
func FuzzClientResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTOLEN",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		mc := &memConn{r: bytes.NewReader(data)}
		cl := &Client{MaxHeaderBytes: 4 << 10, Dial: func(context.Context, string, string) (net.Conn, error) { return mc, nil }}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		req, _ := http.NewRequest(method, "http://upstream.test/", nil)
		resp, err := cl.RoundTrip(req)
		if err != nil {
			if cl.nidle != 0 {
				t.Fatal("a connection was pooled after a failed exchange")
			}
			return
		}
		n, err := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if n > int64(len(data)) {
			t.Fatalf("body of %d bytes from %d upstream bytes", n, len(data))
		}
		if cl.nidle > 0 && (err != nil || mc.r.Len() > 0) {
			t.Fatalf("pooled with %d upstream bytes unread (body error %v)", mc.r.Len(), err)
		}
	})
}
