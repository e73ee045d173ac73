package transparent

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// handoffPair starts ServeHandoff (accepting agent bot with token good)
// and returns a connected Sender and the connections the handler received.
func handoffPair(t *testing.T) (*Sender, string, <-chan *Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "h.sock")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Skipf("unixpacket sockets unavailable: %v", err)
	}
	got := make(chan *Conn, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeHandoff(ctx, ln, func(a, tok string) bool { return a == "bot" && tok == "good" },
			func(_ context.Context, c *Conn) { got <- c }, nil)
	}()
	s, err := DialHandoff(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeHandoff: %v", err)
		}
	})
	return s, path, got
}

// tcpPair returns a peeked server-side Conn and its client end; the client
// has sent hello.
func tcpPair(t *testing.T, hello string) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(cl, hello)
	p, err := Peek(sv, DefaultMaxPeek, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &Conn{Conn: p.Conn, OrigDst: netip.MustParseAddrPort("203.0.113.5:80"), ServerName: p.ServerName, TLS: p.TLS}, cl
}

// TestHandoffPassesSocket: the receiver gets the same socket (it answers
// the client directly), the peeked bytes first, and the metadata.
func TestHandoffPassesSocket(t *testing.T) {
	s, _, got := handoffPair(t)
	hello := "GET /x HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
	c, client := tcpPair(t, hello)
	if err := s.Send(c, "bot", "good"); err != nil {
		t.Fatal(err)
	}
	var rc *Conn
	select {
	case rc = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("handler never got the connection")
	}
	defer rc.Close()
	if rc.Agent != "bot" || rc.ServerName != "api.example.test" || rc.TLS || rc.OrigDst.String() != "203.0.113.5:80" {
		t.Fatalf("metadata %+v", rc)
	}
	b := make([]byte, len(hello))
	if _, err := io.ReadFull(rc, b); err != nil || string(b) != hello {
		t.Fatalf("replayed %q, %v", b, err)
	}
	io.WriteString(rc, "pong")
	rc.Close()
	out, _ := io.ReadAll(client)
	if string(out) != "pong" {
		t.Fatalf("client read %q from the handed-off socket", out)
	}
}

// TestHandoffRefusals (hostile): a wrong credential, an unknown agent, or
// a message with no descriptor never reaches the handler, and the passed
// socket is closed (the client sees EOF).
func TestHandoffRefusals(t *testing.T) {
	s, path, got := handoffPair(t)
	for name, cred := range map[string][2]string{"wrong token": {"bot", "bad"}, "unknown agent": {"ghost", "good"}} {
		t.Run(name, func(t *testing.T) {
			c, client := tcpPair(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			if err := s.Send(c, cred[0], cred[1]); err != nil {
				t.Fatal(err)
			}
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("client read %d, %v: want EOF (socket closed by the receiver)", n, err)
			}
		})
	}
	raw, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, msg := range []string{`{"agent":"bot","token":"good","orig_dst":"1.2.3.4:443"}`, `not json`} {
		if _, _, err := raw.WriteMsgUnix([]byte(msg), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Two descriptors in one message are refused too (both closed).
	c1, cl1 := tcpPair(t, "x")
	tcp, _ := c1.Unwrap()
	f, _ := tcp.(*net.TCPConn).File()
	defer f.Close()
	raw.WriteMsgUnix([]byte(`{"agent":"bot","token":"good","orig_dst":"1.2.3.4:443"}`), unix.UnixRights(int(f.Fd()), int(f.Fd())), nil)
	c1.Close()
	f.Close()
	cl1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl1.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("two-descriptor message: client read err %v, want EOF", err)
	}
	select {
	case c := <-got:
		t.Fatalf("a refused hand-off reached the handler: %+v", c)
	case <-time.After(200 * time.Millisecond):
	}
}

// FuzzHandoffMessage: any message without exactly one descriptor is
// refused without a panic; the credential check always runs before a Conn
// exists.
func FuzzHandoffMessage(f *testing.F) {
	f.Add([]byte(`{"agent":"bot","token":"good","orig_dst":"1.2.3.4:443","server_name":"x","tls":true,"peeked":"FgM="}`))
	f.Add([]byte(`{"agent":"bot","token":"good","orig_dst":"[::1]:80","extra":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		authed := false
		c, err := handoffConn(msg, nil, func(a, tok string) bool { authed = true; return true })
		if err == nil || c != nil {
			t.Fatalf("a message with no descriptor was accepted: %+v", c)
		}
		if authed {
			t.Fatal("credential checked for a message with no descriptor")
		}
	})
}

// TestReplayThenDirect: small reads get the peeked head and then the live
// stream in order; Unwrap after a partial read gives the TCP socket itself
// and exactly the unread part of the head.
func TestReplayThenDirect(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
	for name, tc := range map[string]struct{ readFirst int }{
		"unwrap before reading": {0},
		"unwrap mid-head":       {5},
		"unwrap after the head": {len(head)},
	} {
		t.Run(name, func(t *testing.T) {
			c, cl := tcpPair(t, head)
			if c.ServerName != "api.example.test" {
				t.Fatalf("server name %q", c.ServerName)
			}
			got := make([]byte, tc.readFirst)
			for i := range got {
				if _, err := io.ReadFull(c, got[i:i+1]); err != nil {
					t.Fatal(err)
				}
			}
			raw, rest := c.Unwrap()
			if _, ok := raw.(*net.TCPConn); !ok {
				t.Fatalf("Unwrap gave %T, want the *net.TCPConn", raw)
			}
			if string(got)+string(rest) != head {
				t.Fatalf("read %q + rest %q, want the head %q", got, rest, head)
			}
			io.WriteString(cl, "live")
			live := make([]byte, 4)
			if _, err := io.ReadFull(raw, live); err != nil || string(live) != "live" {
				t.Fatalf("live bytes %q, %v", live, err)
			}
		})
	}
}

// TestHandoffProxyDoor: a connection to the proxy port arrives marked
// Proxy; a message naming any other door is refused (hostile: a sender
// cannot pick a receiver path that does not exist) and its socket closed.
func TestHandoffProxyDoor(t *testing.T) {
	s, path, got := handoffPair(t)
	c, _ := tcpPair(t, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
	c.Proxy = true
	if err := s.Send(c, "bot", "good"); err != nil {
		t.Fatal(err)
	}
	select {
	case rc := <-got:
		rc.Close()
		if !rc.Proxy {
			t.Fatalf("proxy-port connection arrived as redirected: %+v", rc)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler never got the connection")
	}
	raw, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c2, cl2 := tcpPair(t, "x")
	tcp, _ := c2.Unwrap()
	f, _ := tcp.(*net.TCPConn).File()
	defer f.Close()
	msg := `{"agent":"bot","token":"good","orig_dst":"1.2.3.4:443","door":"admin"}`
	if _, _, err := raw.WriteMsgUnix([]byte(msg), unix.UnixRights(int(f.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	f.Close()
	cl2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("unknown door: client read err %v, want EOF (socket closed)", err)
	}
	select {
	case rc := <-got:
		t.Fatalf("unknown door reached the handler: %+v", rc)
	default:
	}
}
