package transparent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock/airlock/proxy/testkit"
)

// serveTest runs a Listener on loopback whose original destination is
// fixed to dst, and returns its address and the handed connections.
func serveTest(t *testing.T, cfg Config, dst netip.AddrPort, h Handler) (string, *prometheus.Registry) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	if cfg.OrigDst == nil {
		cfg.OrigDst = func(net.Conn) (netip.AddrPort, error) { return dst, nil }
	}
	l, err := New(ln, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), reg
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitFor is the module's one poll-to-a-deadline helper.
var waitFor = testkit.WaitFor

// TestHandOffReplaysTLS: the handler gets SNI, destination and agent, and
// a TLS server on the handed Conn completes the handshake the client began
// (the peeked ClientHello is replayed, not lost).
func TestHandOffReplaysTLS(t *testing.T) {
	ca := newTestCA(t)
	dst := netip.MustParseAddrPort("203.0.113.7:443")
	got := make(chan *Conn, 1)
	addr, reg := serveTest(t, Config{Agent: "bot"}, dst, func(_ context.Context, c *Conn) {
		got <- c
		serveStubTLS(c, ca)
	})
	tr := &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: ca.pool},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://api.example.test/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c := <-got
	if c.ServerName != "api.example.test" || !c.TLS || c.OrigDst != dst || c.Agent != "bot" {
		t.Fatalf("handed %+v", c)
	}
	if want := "stub api.example.test /v1"; string(body) != want {
		t.Fatalf("body %q, want %q", body, want)
	}
	if n := counter(t, reg, resultHanded); n != 1 {
		t.Fatalf("handed counter %v", n)
	}
}

// TestRefusals plays clients the door must not attribute.
func TestRefusals(t *testing.T) {
	cases := map[string]struct {
		cfg    Config
		dst    func(local string) netip.AddrPort
		result string
	}{
		"direct connection to the listener loops": {
			cfg: Config{Agent: "bot"},
			dst: func(local string) netip.AddrPort { return netip.MustParseAddrPort(local) }, result: resultLoop,
		},
		"source no mapping names": {
			cfg: Config{Sources: []SourceAgent{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Agent: "pod"}}},
			dst: func(string) netip.AddrPort { return netip.MustParseAddrPort("203.0.113.7:443") }, result: resultUnknownSource,
		},
		"no original destination": {
			cfg: Config{Agent: "bot", OrigDst: func(net.Conn) (netip.AddrPort, error) { return netip.AddrPort{}, ErrNotRedirected }},
			dst: func(string) netip.AddrPort { return netip.AddrPort{} }, result: resultNoOrigDst,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var addr string
			called := make(chan struct{}, 1)
			cfg := tc.cfg
			if cfg.OrigDst == nil {
				cfg.OrigDst = func(c net.Conn) (netip.AddrPort, error) { return tc.dst(c.LocalAddr().String()), nil }
			}
			addr, reg := serveTest(t, cfg, netip.AddrPort{}, func(_ context.Context, c *Conn) { called <- struct{}{}; c.Close() })
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
				t.Fatalf("read: %v, want the connection closed", err)
			}
			select {
			case <-called:
				t.Fatal("handler called for a refused connection")
			default:
			}
			waitFor(t, 2*time.Second, func() error {
				if counter(t, reg, tc.result) != 1 {
					return errors.New("refusal not counted as " + tc.result)
				}
				return nil
			})
		})
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

// TestSourceMapping: the longest prefix names the agent; others get the
// default.
func TestSourceMapping(t *testing.T) {
	l := &Listener{cfg: Config{Agent: "default", Sources: []SourceAgent{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Agent: "wide"},
		{Prefix: netip.MustParsePrefix("10.1.2.0/24"), Agent: "narrow"},
	}}}
	for addr, want := range map[string]string{"10.1.2.3": "narrow", "10.9.9.9": "wide", "192.0.2.1": "default", "::ffff:10.1.2.9": "narrow"} {
		if got, _ := l.agentFor(netip.MustParseAddr(addr)); got != want {
			t.Errorf("agentFor(%s) = %q, want %q", addr, got, want)
		}
	}
}

// TestPeekBounds: a silent client is handed over after the deadline with
// no name; an oversized head stops at MaxPeek; plain HTTP yields Host and
// the handler reads the whole request.
func TestPeekBounds(t *testing.T) {
	dst := netip.MustParseAddrPort("203.0.113.7:80")
	got := make(chan *Conn, 1)
	addr, _ := serveTest(t, Config{Agent: "bot", PeekTimeout: 100 * time.Millisecond, MaxPeek: 64}, dst,
		func(_ context.Context, c *Conn) { got <- c })
	t.Run("silent client", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		h := <-got
		defer h.Close()
		if h.ServerName != "" || h.TLS {
			t.Fatalf("handed %+v", h)
		}
	})
	t.Run("oversized head", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		req := "GET / HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", 200) + "\r\nHost: late.test\r\n\r\n"
		go c.Write([]byte(req))
		h := <-got
		defer h.Close()
		if h.ServerName != "" {
			t.Fatalf("name %q found past MaxPeek", h.ServerName)
		}
		b := make([]byte, len(req))
		if _, err := io.ReadFull(h, b); err != nil || string(b) != req {
			t.Fatalf("replay %q, %v", b, err)
		}
	})
	t.Run("plain http", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Write([]byte("GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"))
		h := <-got
		defer h.Close()
		req, err := http.ReadRequest(bufio.NewReader(h))
		if err != nil || h.ServerName != "a.test" || req.URL.Path != "/x" {
			t.Fatalf("handed %q, request %v, %v", h.ServerName, req, err)
		}
	})
}
