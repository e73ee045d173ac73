package conn

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestSniffReplays: the sniffed first byte is read again, then the rest,
// whatever the reader's buffer size.
func TestSniffReplays(t *testing.T) {
	for name, bufSize := range map[string]int{"one byte": 1, "big": 64} {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			go func() { _, _ = b.Write([]byte("CONNECT x")); _ = b.Close() }()
			first, c, err := Sniff(a, time.Second)
			if err != nil || first != 'C' {
				t.Fatalf("Sniff = %q, %v", first, err)
			}
			var got []byte
			buf := make([]byte, bufSize)
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if string(got) != "CONNECT x" {
				t.Fatalf("read %q after sniffing, want the whole stream", got)
			}
		})
	}
}

// TestSniffTimeout: a client that sends nothing is given up on.
func TestSniffTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, _, err := Sniff(a, 20*time.Millisecond); err == nil {
		t.Fatal("Sniff of a silent connection returned no error")
	}
}

// TestListenerClosed: Push to a closed Listener closes the connection and
// Accept reports net.ErrClosed.
func TestListenerClosed(t *testing.T) {
	l := NewListener(&net.TCPAddr{})
	_ = l.Close()
	a, b := net.Pipe()
	l.Push(a)
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("connection pushed to a closed listener is still open")
	}
	if _, err := l.Accept(); !IsClosed(err) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
}
