package transparent

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"testing"
)

// BenchmarkHop compares one request per new connection through the
// transparent door (peek + replay + splice to the upstream) with the same
// request through an explicit CONNECT hop, at c=1 and c=50. Both hops run
// on loopback; the kernel's REDIRECT cost is not included.
//
//	go test -run '^$' -bench Hop -benchtime 2000x ./proxy/transparent/
func BenchmarkHop(b *testing.B) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	upAddr := up.Listener.Addr().String()
	pool := up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	tln, _ := net.Listen("tcp", "127.0.0.1:0")
	tl, _ := New(tln, Config{Agent: "bench", OrigDst: func(net.Conn) (netip.AddrPort, error) {
		return netip.MustParseAddrPort("203.0.113.7:443"), nil
	}}, func(_ context.Context, c *Conn) { spliceTo(c, upAddr) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tl.Serve(ctx)

	pln, _ := net.Listen("tcp", "127.0.0.1:0")
	go serveCONNECT(pln, upAddr)
	defer pln.Close()

	transparentT := &http.Transport{Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", tln.Addr().String())
		}}
	proxyURL, _ := url.Parse("http://" + pln.Addr().String())
	explicitT := &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}}
	for _, path := range []struct {
		name string
		tr   *http.Transport
	}{{"transparent", transparentT}, {"explicit", explicitT}} {
		for _, c := range []int{1, 50} {
			b.Run(path.name+"/c="+itoa(c), func(b *testing.B) {
				client := &http.Client{Transport: path.tr}
				b.SetParallelism((c + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := client.Get("https://example.com/")
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			})
		}
	}
}

func itoa(n int) string {
	if n == 1 {
		return "1"
	}
	return "50"
}

// spliceTo connects c to addr and copies both ways.
func spliceTo(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 1)
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	io.Copy(c, up)
	<-done
}

// serveCONNECT is a minimal explicit proxy: CONNECT, 200, splice.
func serveCONNECT(ln net.Listener, upAddr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Method != http.MethodConnect {
				c.Close()
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
			spliceTo(&bufConn{Conn: c, r: br}, upAddr)
		}()
	}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
