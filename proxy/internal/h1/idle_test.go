package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs ServeConn on one end of a loopback TCP pair with handler and
// returns the client end.
func serve(t *testing.T, handler http.HandlerFunc) net.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := &Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, MaxHeaderBytes: 1 << 16}
	go func() {
		c, err := l.Accept()
		if err == nil {
			s.ServeConn(c, Conn{Handler: handler})
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func readBody(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An idle connection gives its read buffer back and replays the first
// byte it read on its own; pipelined requests (already buffered) are
// served from the buffer; neither loses a byte.
func TestIdleConnectionKeepsEveryByte(t *testing.T) {
	c := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "path="+r.URL.Path) })
	br := bufio.NewReader(c)
	cases := []struct {
		name  string
		send  string
		wants []string
	}{
		{"first request", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", []string{"path=/a"}},
		{"after idle", "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", []string{"path=/b"}},
		{"pipelined", "GET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\n\r\n", []string{"path=/c", "path=/d"}},
	}
	for _, tc := range cases {
		time.Sleep(20 * time.Millisecond) // let the loop go idle
		if _, err := io.WriteString(c, tc.send); err != nil {
			t.Fatal(err)
		}
		for _, want := range tc.wants {
			if got := readBody(t, br); got != want {
				t.Fatalf("%s: body %q, want %q", tc.name, got, want)
			}
		}
	}
	// The first byte alone, then the rest: the replayed byte and the
	// later bytes make one request.
	_, _ = io.WriteString(c, "G")
	time.Sleep(20 * time.Millisecond)
	_, _ = io.WriteString(c, "ET /e HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := readBody(t, br); got != "path=/e" {
		t.Fatalf("split first byte: %q", got)
	}
}

// A stream returns its write buffer after every flush and takes one again
// for the next write.
func TestStreamFlushReleasesWriteBuffer(t *testing.T) {
	held := make(chan bool, 3)
	c := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			_, _ = io.WriteString(w, "data: "+strings.Repeat("x", i+1)+"\n\n")
			_ = rc.Flush()
			held <- w.(*innerWriter).ic.bw != nil
		}
	})
	_, _ = io.WriteString(c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
	got := readBody(t, bufio.NewReader(c))
	if want := "data: x\n\ndata: xx\n\ndata: xxx\n\n"; got != want {
		t.Fatalf("stream %q, want %q", got, want)
	}
	for range 3 {
		if <-held {
			t.Fatal("write buffer held after a flush")
		}
	}
}
