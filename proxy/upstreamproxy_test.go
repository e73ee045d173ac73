package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"github.com/airlock/airlock/proxy/internal/egress"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseUpstreamProxy(t *testing.T) {
	cases := map[string]struct {
		raw, addr, auth, redacted string
		bad                       bool
	}{
		"host and port": {raw: "http://proxy.corp:3128", addr: "proxy.corp:3128", redacted: "http://proxy.corp:3128"},
		"default port":  {raw: "http://proxy.corp", addr: "proxy.corp:80", redacted: "http://proxy.corp:80"},
		"with auth": {raw: "http://u:p%40ss@10.0.0.1:8080", addr: "10.0.0.1:8080",
			auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p@ss")), redacted: "http://u@10.0.0.1:8080"},
		"ipv6":       {raw: "http://[::1]:3128", addr: "[::1]:3128", redacted: "http://[::1]:3128"},
		"https":      {raw: "https://proxy:3128", bad: true},
		"socks":      {raw: "socks5://proxy:1080", bad: true},
		"no host":    {raw: "http://:3128", bad: true},
		"with path":  {raw: "http://proxy:3128/x", bad: true},
		"not a url":  {raw: "http://u:secret@[bad", bad: true},
		"with query": {raw: "http://proxy:3128/?a=b", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			up, err := egress.ParseUpstreamProxy(tc.raw)
			if tc.bad {
				if err == nil || !errors.Is(err, egress.ErrUpstreamProxy) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("got %v, want egress.ErrUpstreamProxy without the URL", err)
				}
				return
			}
			if err != nil || up.Addr != tc.addr || up.Auth != tc.auth || up.Redacted != tc.redacted {
				t.Fatalf("got %+v, %v", up, err)
			}
		})
	}
}

// connectProxy is a tiny CONNECT proxy on loopback that records what it
// was asked and splices the tunnel.
type connectProxy struct {
	l        net.Listener
	wantAuth string
	mu       sync.Mutex
	targets  []string
}

func newConnectProxy(t *testing.T, wantAuth string) *connectProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{l: l, wantAuth: wantAuth}
	t.Cleanup(func() { l.Close() })
	go p.serve()
	return p
}

func (p *connectProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *connectProxy) handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.RequestURI)
	p.mu.Unlock()
	if p.wantAuth != "" && req.Header.Get("Proxy-Authorization") != p.wantAuth {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.RequestURI)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go io.Copy(up, br)
	io.Copy(c, up)
}

func (p *connectProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// echoServer answers each connection with "hello\n".
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestDialThroughUpstreamProxy(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	target := echoServer(t)
	_, port, _ := net.SplitHostPort(target)
	cases := map[string]struct {
		userinfo  string
		wantAuth  string
		allow     []netip.Prefix
		dial      string
		wantErr   string
		wantSeen  string // the CONNECT target the proxy saw; "" none
		wantHello bool
	}{
		"by name, CONNECT names the checked IP": {allow: loopback, dial: "localhost:" + port, wantSeen: "127.0.0.1:" + port, wantHello: true},
		"with proxy auth": {userinfo: "corp:pw@", wantAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("corp:pw")),
			allow: loopback, dial: target, wantSeen: target, wantHello: true},
		"proxy refuses": {userinfo: "corp:wrong-secret@", wantAuth: "Basic nope", allow: loopback, dial: target,
			wantSeen: target, wantErr: "refused CONNECT"},
		"guard blocks before CONNECT": {dial: target, wantErr: "forbidden networks"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newConnectProxy(t, tc.wantAuth)
			up, err := egress.ParseUpstreamProxy("http://" + tc.userinfo + p.l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			d := egress.NewDialer(func() []netip.Prefix { return tc.allow })
			d.Via = func() (*egress.UpstreamProxy, error) { return up, nil }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", tc.dial)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("got %v, want %q (without the proxy password)", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				if line != "hello\n" {
					t.Errorf("through the tunnel: %q", line)
				}
			}
			seen := p.seen()
			if tc.wantSeen == "" && len(seen) != 0 || tc.wantSeen != "" && (len(seen) != 1 || seen[0] != tc.wantSeen) {
				t.Errorf("proxy saw CONNECT %v, want %q", seen, tc.wantSeen)
			}
		})
	}
}
