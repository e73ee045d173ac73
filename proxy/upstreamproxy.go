package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/airlock/airlock/policy"
)

// Corporate egress: with egress.upstream_proxy set, every upstream
// connection (forwarded requests and tunnel rules) leaves through that
// HTTP proxy with CONNECT. The dial guard first resolves the destination
// and drops forbidden addresses as always; the CONNECT then names the
// checked IP address (not the host name), so the proxy cannot be steered to
// an address the guard did not approve (DNS rebinding). TLS to the upstream
// still verifies the host name: it runs over the tunnel. The proxy's own
// address is configuration, not agent input, and is not subject to the
// guard.

// upstreamProxy is a parsed egress.upstream_proxy.
type upstreamProxy struct {
	addr     string // host:port
	auth     string // Proxy-Authorization value, or ""
	redacted string // the URL without its password, for status and logs
}

// upstreamCache keeps the parse of one policy's upstream_proxy.
type upstreamCache struct {
	p   *policy.Policy
	up  *upstreamProxy
	err error
}

var errUpstreamProxy = errors.New("invalid egress.upstream_proxy")

// parseUpstreamProxy accepts http://[user:pass@]host[:port] (port 80 when
// omitted). Errors never repeat the URL: it may hold a password.
func parseUpstreamProxy(raw string) (*upstreamProxy, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: want http://[user:pass@]host:port", errUpstreamProxy)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	up := &upstreamProxy{addr: net.JoinHostPort(u.Hostname(), port)}
	red := url.URL{Scheme: "http", Host: up.addr}
	if u.User != nil {
		pass, _ := u.User.Password()
		up.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
		red.User = url.User(u.User.Username())
	}
	up.redacted = red.String()
	return up, nil
}

// upstreamProxy returns the upstream proxy of the policy in force, or nil.
func (s *Server) upstreamProxy() *upstreamProxy {
	up, _ := s.upstreamProxyOf(s.Policy())
	return up
}

func (s *Server) upstreamProxyOf(p *policy.Policy) (*upstreamProxy, error) {
	if p == nil || p.Egress.UpstreamProxy == "" {
		return nil, nil
	}
	if c := s.ops.upstream.Load(); c != nil && c.p == p {
		return c.up, c.err
	}
	up, err := parseUpstreamProxy(p.Egress.UpstreamProxy)
	s.ops.upstream.Store(&upstreamCache{p: p, up: up, err: err})
	return up, err
}

// viaUpstreamProxy is the dialer's hook: nil, nil when no upstream proxy is
// configured.
func (s *Server) viaUpstreamProxy() (*upstreamProxy, error) {
	return s.upstreamProxyOf(s.Policy())
}

// dial opens a CONNECT tunnel through the proxy to the first of the
// checked ips that the proxy reaches.
func (up *upstreamProxy) dial(ctx context.Context, nd *net.Dialer, ips []netip.Addr, port string) (net.Conn, error) {
	var firstErr error
	for _, ip := range ips {
		c, err := up.connect(ctx, nd, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

func (up *upstreamProxy) connect(ctx context.Context, nd *net.Dialer, target string) (net.Conn, error) {
	c, err := nd.DialContext(ctx, "tcp", up.addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream proxy %s: %w", up.redacted, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	br, err := up.handshake(c, target)
	stop()
	_ = c.SetDeadline(time.Time{})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if br.Buffered() > 0 {
		return &peekedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// handshake sends the CONNECT and reads the proxy's answer.
func (up *upstreamProxy) handshake(c net.Conn, target string) (*bufio.Reader, error) {
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if up.auth != "" {
		req += "Proxy-Authorization: " + up.auth + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		return nil, fmt.Errorf("upstream proxy %s: send CONNECT: %w", up.redacted, err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: read CONNECT response: %w", up.redacted, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("upstream proxy %s refused CONNECT %s: %s", up.redacted, target, resp.Status)
	}
	return br, nil
}

// viaProxy is the upstream proxy the dialer must go through, if any.
func (d *dialer) viaProxy() (*upstreamProxy, error) {
	if d.via == nil {
		return nil, nil
	}
	return d.via()
}
