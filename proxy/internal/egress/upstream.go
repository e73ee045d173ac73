package egress

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

// UpstreamProxy is a parsed egress.upstream_proxy.
type UpstreamProxy struct {
	Addr     string // host:port
	Auth     string // Proxy-Authorization value, or ""
	Redacted string // the URL without its password, for status and logs
}

var ErrUpstreamProxy = errors.New("invalid egress.upstream_proxy")

// ParseUpstreamProxy accepts http://[user:pass@]host[:port] (port 80 when
// omitted). Errors never repeat the URL: it may hold a password.
func ParseUpstreamProxy(raw string) (*UpstreamProxy, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: want http://[user:pass@]host:port", ErrUpstreamProxy)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	up := &UpstreamProxy{Addr: net.JoinHostPort(u.Hostname(), port)}
	red := url.URL{Scheme: "http", Host: up.Addr}
	if u.User != nil {
		pass, _ := u.User.Password()
		up.Auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
		red.User = url.User(u.User.Username())
	}
	up.Redacted = red.String()
	return up, nil
}

// dial opens a CONNECT tunnel through the proxy to the first of the
// checked ips that the proxy reaches.
func (up *UpstreamProxy) dial(ctx context.Context, nd *net.Dialer, ips []netip.Addr, port string) (net.Conn, error) {
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

func (up *UpstreamProxy) connect(ctx context.Context, nd *net.Dialer, target string) (net.Conn, error) {
	c, err := nd.DialContext(ctx, "tcp", up.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial upstream proxy %s: %w", up.Redacted, err)
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
func (up *UpstreamProxy) handshake(c net.Conn, target string) (*bufio.Reader, error) {
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if up.Auth != "" {
		req += "Proxy-Authorization: " + up.Auth + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		return nil, fmt.Errorf("upstream proxy %s: send CONNECT: %w", up.Redacted, err)
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %s: read CONNECT response: %w", up.Redacted, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("upstream proxy %s refused CONNECT %s: %s", up.Redacted, target, resp.Status)
	}
	return br, nil
}

// viaProxy is the upstream proxy the Dialer must go through, if any.
func (d *Dialer) viaProxy() (*UpstreamProxy, error) {
	if d.Via == nil {
		return nil, nil
	}
	return d.Via()
}

// peekedConn replays the bytes the CONNECT handshake read past the answer.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
