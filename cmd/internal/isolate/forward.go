package isolate

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/transparent"
)

// dialTimeout bounds the hop to the proxy.
const dialTimeout = 10 * time.Second

// ForwardCONNECT returns a Handler that gives each isolated connection to
// a running airlock proxy at proxyAddr as the CONNECT the client would
// have sent: `CONNECT ServerName:port` with the run's credential as
// Proxy-Authorization, then the client's bytes (ClientHello first)
// unchanged. The proxy then identifies, matches, MITMs and injects, tunnels
// or denies exactly as for an explicit client. A connection with no name
// goes as CONNECT to its original address. Once cred.ExpiresAt has passed
// (--ttl) every new connection is refused here, whatever the proxy does.
func ForwardCONNECT(proxyAddr string, cred Credential, log *zap.Logger) transparent.Handler {
	if log == nil {
		log = zap.NewNop()
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Agent+":"+cred.Token))
	return func(ctx context.Context, c *transparent.Conn) {
		defer c.Close()
		if !cred.ExpiresAt.IsZero() && time.Now().After(cred.ExpiresAt) {
			log.Warn("isolated connection refused: run credential expired", zap.Time("expires_at", cred.ExpiresAt))
			return
		}
		target := c.OrigDst.String()
		if c.ServerName != "" {
			target = net.JoinHostPort(c.ServerName, strconv.Itoa(int(c.OrigDst.Port())))
		}
		up, err := connect(ctx, proxyAddr, target, auth)
		if err != nil {
			log.Warn("isolated connection refused", zap.String("target", target), zap.Error(err))
			return
		}
		defer up.Close()
		relay(c, up)
	}
}

// connect opens a CONNECT tunnel through the proxy.
func connect(ctx context.Context, proxyAddr, target, auth string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dial airlock at %s: %w", proxyAddr, err)
	}
	_ = up.SetDeadline(time.Now().Add(dialTimeout))
	fmt.Fprintf(up, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", target, target, auth)
	br := bufio.NewReader(up)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		up.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		up.Close()
		return nil, fmt.Errorf("CONNECT %s: proxy answered %s", target, resp.Status)
	}
	_ = up.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		up.Close()
		return nil, fmt.Errorf("CONNECT %s: proxy sent bytes before the tunnel", target)
	}
	return up, nil
}

// spliceToProxy connects c, a connection to the explicit proxy port, to
// the proxy at proxyAddr unchanged, and closes it.
func spliceToProxy(ctx context.Context, proxyAddr string, c *transparent.Conn, log *zap.Logger) {
	defer c.Close()
	up, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		log.Warn("isolated proxy connection failed", zap.Error(err))
		return
	}
	defer up.Close()
	relay(c, up)
}

// relay writes the bytes c peeked to up, then splices c's socket itself
// to up (TCP to TCP, so io.Copy can use the kernel's splice).
func relay(c *transparent.Conn, up net.Conn) {
	raw, rest := c.Unwrap()
	if len(rest) > 0 {
		if _, err := up.Write(rest); err != nil {
			return
		}
	}
	splice(raw, up)
}

// splice copies both ways until both directions end.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}
