package proxy

// Refusals: the error type and codes both doors answer with (package
// errcode), loops through airlock, placeholders where no rule binds them,
// and denials answered inside the tunnel where the agent can read them.

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/internal/placeholder"
	"github.com/airlock/airlock/proxy/internal/scrub"
)

// Error is the refusal type of both doors ([errcode.Error]).
type Error = errcode.Error

// Error codes, re-exported from [errcode] for existing callers.
const (
	CodeAuthFailed         = errcode.AuthFailed
	CodeAccessDenied       = errcode.AccessDenied
	CodeCredentialNotFound = errcode.CredentialNotFound
	CodeCredentialExpired  = errcode.CredentialExpired
	CodeCredentialInvalid  = errcode.CredentialInvalid
	CodeVaultLocked        = errcode.VaultLocked
	CodeRateLimited        = errcode.RateLimited
	CodeEgressBlocked      = errcode.EgressBlocked
	CodeUpstreamError      = errcode.UpstreamError
	CodeBadRequest         = errcode.BadRequest
	CodeMisdirected        = errcode.Misdirected
	CodeLoopDetected       = errcode.LoopDetected
	CodeTooManyConns       = errcode.TooManyConns
)

var (
	newError = errcode.New
	asError  = errcode.As
)

// placeholderError is the 403 for a placeholder refused or impossible
// (package placeholder).
func placeholderError(err error) *Error { return placeholder.Refusal(err) }

// viaAirlock is the Via value airlock adds to every forwarded request; an
// inbound request carrying it has been through airlock already.
const viaAirlock = "1.1 airlock"

// outboundHygiene marks the outbound request with Via (loop detection) and,
// when a credential is injected, asks for identity encoding so the response
// scrubber sees plaintext (observe.go explains what happens otherwise) and
// strips the agent's Range and If-Range, so an upstream that echoes the
// secret cannot be made to hand it out a few bytes per response
// (scrub.StripRange; a 206 that comes anyway is refused in scrubResponse).
// Proxy-* and hop-by-hop headers are already gone: rewrite deletes Proxy-*
// and prepareOutbound (relay.go; the ReverseProxy for upgrades) removes the
// hop-by-hop set (Connection and the headers it names, Keep-Alive, Te,
// Trailer, Transfer-Encoding, Upgrade).
func outboundHygiene(out *http.Request, d *decision) {
	out.Header.Add("Via", viaAirlock)
	if d.cred != nil {
		out.Header.Set("Accept-Encoding", "identity")
		scrub.StripRange(out.Header)
	}
}

// loopDetected refuses a request that already passed through an airlock.
func loopDetected(r *http.Request) *Error {
	for _, v := range r.Header.Values("Via") {
		for _, hop := range strings.Split(v, ",") {
			f := strings.Fields(hop)
			if len(f) >= 2 && strings.EqualFold(f[1], "airlock") {
				return loopError("the request already passed through airlock (Via: airlock)")
			}
		}
	}
	return nil
}

func loopError(msg string) *Error {
	return newError(http.StatusLoopDetected, CodeLoopDetected, msg,
		"airlock does not proxy to itself; send the request to the real upstream")
}

// partialError refuses a partial answer (scrub.ErrPartial) to a request
// with an injected credential (scrubResponse, observe.go).
func partialError(err error) *Error {
	return newError(http.StatusBadGateway, CodeUpstreamError, "refused the upstream's partial response: "+err.Error(),
		"airlock strips Range on requests it injects; the upstream answered with part of the content anyway")
}

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

// answerDenied serves a denied tunnel: 200 to the CONNECT, then
// answerDeniedInside.
func (s *Server) answerDenied(c net.Conn, host string, e *Error) {
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = c.Close()
		return
	}
	s.answerDeniedInside(c, host, e)
}

// answerDeniedInside finishes TLS with a leaf for host (or reads plain
// HTTP), answers the first request with the JSON error and closes c: a
// denied CONNECT after its 200, a denied transparent connection at once.
func (s *Server) answerDeniedInside(c net.Conn, host string, e *Error) {
	defer c.Close()
	first, pc, err := sniff(c, denyTimeout)
	if err != nil {
		return
	}
	inner := pc
	if first == 0x16 {
		cfg := s.certs.TLSConfig(host).Clone()
		cfg.NextProtos = []string{"http/1.1"} // the refusal is one HTTP/1.1 answer; an h2 client would read garbage
		tc := tls.Server(pc, cfg)
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
