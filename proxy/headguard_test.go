package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/internal/h1"
)

// fakeConn reads from r and records writes.
type fakeConn struct {
	net.Conn
	r io.Reader
	w bytes.Buffer
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func TestHeadGuardRefusesWith400(t *testing.T) {
	fc := &fakeConn{r: strings.NewReader("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")}
	g := testServer().guardHeads(fc, "bot")
	n, err := g.Read(make([]byte, 4096))
	var op *net.OpError
	if n != 0 || !errors.As(err, &op) || !errors.Is(err, h1.ErrSmuggling) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	out := fc.w.String()
	if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, "X-Airlock-Error: BAD_REQUEST") || !strings.Contains(out, "Connection: close") {
		t.Errorf("response:\n%s", out)
	}
	if _, err := g.Read(make([]byte, 10)); !errors.Is(err, h1.ErrSmuggling) {
		t.Errorf("second Read: %v", err)
	}
}
