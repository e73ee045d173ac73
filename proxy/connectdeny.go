package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/elazarl/goproxy"
)

// A CONNECT to a host no rule allows is not refused at CONNECT time, where
// clients show only "tunnel failed, response 403": airlock completes the
// CONNECT, finishes TLS with a leaf minted for that host (so a denied host
// costs a leaf in the bounded cache) and answers the first request inside
// with the JSON error, as path denials are answered. Nothing is dialled.
// 407 stays at CONNECT: the client has no identity yet.

// denyTimeout bounds each step of a denied tunnel (handshake, first head).
const denyTimeout = 10 * time.Second

// denyInsideTunnel records the refusal and returns the CONNECT action that
// answers e inside the tunnel (charged to the agent's connection budget).
func (s *Server) denyInsideTunnel(ctx *goproxy.ProxyCtx, ev *event, host string, e *Error) *goproxy.ConnectAction {
	ev.fail(e)
	s.record(ev)
	return s.holdMITM(ctx, ev, &goproxy.ConnectAction{Action: goproxy.ConnectHijack,
		Hijack: func(_ *http.Request, c net.Conn, _ *goproxy.ProxyCtx) { s.answerDenied(c, host, e) }})
}

// answerDenied serves a denied tunnel: 200 to the CONNECT, TLS (or plain
// HTTP) inside, the JSON error to the first request, close.
func (s *Server) answerDenied(c net.Conn, host string, e *Error) {
	defer c.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	first, pc, err := sniff(c, denyTimeout)
	if err != nil {
		return
	}
	inner := pc
	if first == 0x16 {
		tc := tls.Server(pc, s.certs.TLSConfig(host))
		hctx, cancel := context.WithTimeout(context.Background(), denyTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return
		}
		inner = tc
	}
	_ = inner.SetDeadline(time.Now().Add(denyTimeout))
	br := bufio.NewReader(io.LimitReader(inner, int64(s.front.MaxHeaderBytes)+4096))
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	resp := e.Response(req)
	_ = resp.Write(inner)
	if cw, ok := inner.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
