package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/airlock/airlock/proxy/internal/egress"
	"github.com/airlock/airlock/proxy/internal/h1"

	"github.com/elazarl/goproxy"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
)

// newGoproxy configures goproxy as the CONNECT front door: it reads the
// CONNECT, asks handleConnect for a verdict and splices tunnels. MITM'd
// connections are hijacked and served by the lean loop (inner.go), not by
// goproxy's own MITM loop: that loop routes by the inner Host header and
// sets no deadlines, and airlock needs both under its control.
func (s *Server) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = s.transport
	gp.ConnectDialWithReq = s.dialTunnel
	gp.ConnectionErrHandler = s.tunnelError
	gp.OnRequest().HandleConnectFunc(s.handleConnect)
	return gp
}

// serveFront is the handler of agent connections: CONNECT goes to goproxy,
// absolute-form plain http:// requests straight to the pipeline.
func (s *Server) serveFront(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		s.goproxy.ServeHTTP(w, r)
		return
	}
	r, untrack := s.trackPlain(r) // cut on revocation (agents.go)
	defer untrack()
	s.servePipeline(w, r, nil)
}

// authenticate identifies the agent from Proxy-Authorization: Basic.
func (s *Server) authenticate(r *http.Request) (string, *Error) {
	name, token, ok := parseProxyAuth(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return "", newError(http.StatusProxyAuthRequired, CodeAuthFailed,
			"proxy authentication required",
			"set HTTPS_PROXY=http://AGENT:TOKEN@host:port; `airlock env --agent NAME` prints it")
	}
	v := s.Vault()
	if v == nil {
		return "", vaultLocked()
	}
	if !s.authToken(v, name, token) { // re-reads a vault changed on disk (agents.go)
		return "", newError(http.StatusProxyAuthRequired, CodeAuthFailed,
			"unknown agent or wrong token",
			"check the agent name and token; `airlock agent list` shows agents, `airlock agent rotate NAME` issues a new token")
	}
	return name, nil
}

func parseProxyAuth(h string) (name, token string, ok bool) {
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return "", "", false
	}
	name, token, ok = strings.Cut(string(raw), ":")
	return name, token, ok && name != ""
}

func vaultLocked() *Error {
	return newError(http.StatusServiceUnavailable, CodeVaultLocked, "the vault is sealed",
		"restart `airlock serve` with the passphrase or key file to unseal it")
}

// handleConnect judges CONNECT host:port: tunnel, deny, or MITM.
func (s *Server) handleConnect(target string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	start := time.Now()
	agent, aerr := s.authenticate(r)
	host, port := connectTarget(target)
	ev := &event{start: start, agent: agent, method: http.MethodConnect, host: host, port: port}
	if aerr != nil {
		return s.rejectConnect(ctx, ev, aerr), target
	}
	if port < 0 {
		return s.rejectConnect(ctx, ev, newError(http.StatusBadRequest, CodeBadRequest, "bad CONNECT target "+target, "")), target
	}
	action, rule := s.Policy().ConnectDecision(agent, host, port)
	if rule != nil {
		ev.rule = rule.Name
	}
	switch action {
	case policy.ActionDeny:
		if a, t, ok := s.reportConnect(ev, host, port); ok { // report mode: refuse.go
			return a, t
		}
		return s.denyInsideTunnel(ctx, ev, host, denied(host, rule)), target // the JSON inside the tunnel (refuse.go)
	case policy.ActionAsk: // no rule names the host: hold the CONNECT for a person, then tunnel
		if e := s.awaitUnmatched(r.Context(), agent, http.MethodConnect, host, port, ""); e != nil {
			return s.denyInsideTunnel(ctx, ev, host, e), target
		}
		fallthrough
	case policy.ActionTunnel:
		if reject := s.holdTunnel(ctx, ev); reject != nil { // per-agent connection cap (agents.go)
			return reject, target
		}
		ev.decision, ev.status = decisionTunnel, http.StatusOK
		s.record(ev)
		return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, net.JoinHostPort(host, itoa(port))
	}
	t := &tunnel{agent: agent, host: host, port: port, hostPort: net.JoinHostPort(host, itoa(port)), logHost: host + ":" + itoa(port)}
	return s.holdMITM(ctx, ev, &goproxy.ConnectAction{Action: goproxy.ConnectHijack, Hijack: func(_ *http.Request, c net.Conn, _ *goproxy.ProxyCtx) {
		s.acceptMITM(c, t) // predial.go: leaf mint and upstream dial start now; served on its own goroutine
	}}), target
}

// connectTarget splits and normalises a CONNECT target (policy.SplitTarget);
// port is -1 when bad. A host no rule can match is kept as sent.
func connectTarget(target string) (string, int) {
	host, port, ok := policy.SplitTarget(target, 443)
	if !ok && port > 0 {
		host, _ = egress.HostPort(target, 443)
	}
	return host, port
}

func (s *Server) rejectConnect(ctx *goproxy.ProxyCtx, ev *event, e *Error) *goproxy.ConnectAction {
	if e.Code == CodeAuthFailed {
		ev.reason = s.authFailReason(ctx.Req) // logged, never sent (agents.go)
	}
	ev.fail(e)
	s.record(ev)
	ctx.Resp = e.Response(ctx.Req)
	return &goproxy.ConnectAction{Action: goproxy.ConnectReject}
}

func denied(host string, rule *policy.Rule) *Error {
	msg := "no rule allows " + host
	if rule != nil {
		msg = "rule " + rule.Name + " denies " + host
	}
	return newError(http.StatusForbidden, CodeAccessDenied, msg,
		"add a rule for this agent and host to the policy; `airlock policy explain` shows which rule applies")
}

// tunnel is what the CONNECT established for a MITM'd connection.
type tunnel struct {
	agent    string
	host     string
	port     int
	hostPort string // host:port as the CONNECT named it, normalised (the pin's fast path)
	logHost  string // host and port as audit lines write them (hostField); "": made per line
	scheme   string // "https", or "http" when the agent spoke plain HTTP inside
	door     string // the door the connection came through; "": the proxy (door.Proxy)

	// ctx is the connection's context (inner.go): the parent of the
	// upstream requests made for it, cancelled when the agent is gone.
	ctx context.Context
}

// mitm answers the CONNECT, terminates the agent's TLS with a leaf for the
// CONNECT host and serves the requests inside (inner.go).
func (s *Server) mitm(c net.Conn, t *tunnel) {
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = c.Close()
		return
	}
	s.serveMITM(c, t)
}

// serveMITM terminates c's TLS (or reads plain HTTP) as t and serves the
// requests inside; CONNECT after its 200, the transparent door at once.
func (s *Server) serveMITM(c net.Conn, t *tunnel) {
	first, pc, err := sniff(c, 10*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if first != 0x16 { // not a TLS handshake: plain HTTP inside the tunnel
		t.scheme = "http"
		s.serveTunnel(s.guardHeads(pc, t.agent), t)
		return
	}
	t.scheme = "https"
	tc := tls.Server(pc, agentTLSConfig(s.certs, t.host, pc.RemoteAddr()))
	if err := s.handshakeAgent(tc); err != nil { // predial.go
		s.log.Debug("mitm handshake failed", fieldAgent(t.agent), fieldHost(t.host), fieldErr(err))
		_ = c.Close()
		return
	}
	if s.h2.Serve(tc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.servePipeline(w, r, t) })) { // the agent chose h2 by ALPN
		return
	}
	s.serveTunnel(s.guardHeads(tc, t.agent), t)
}

// serveTunnel serves the requests of a MITM'd connection: the lean
// HTTP/1.1 loop (inner.go), or net/http.Server for comparison.
func (s *Server) serveTunnel(c net.Conn, t *tunnel) {
	if s.innerNetHTTP {
		s.serveInnerNetHTTP(c, t)
		return
	}
	s.serveInner(c, t)
}

// serveInner serves a MITM'd connection with the lean loop (package h1):
// every request goes to the pipeline pinned to t.
func (s *Server) serveInner(c net.Conn, t *tunnel) {
	s.inner.ServeConn(c, h1.Conn{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.servePipeline(w, r, t) }),
		Started:  func(ctx context.Context) { t.ctx = ctx },
		Panicked: func() { s.log.Error("panic serving a request", fieldAgent(t.agent), fieldHost(t.host)) },
		Refuse: func(c net.Conn, e *Error, method string) {
			s.refuseRaw(c, e, &event{start: time.Now(), agent: t.agent, method: method, host: t.host, port: t.port})
		},
	})
}

// dialTunnel dials the target of a tunnel rule through the dial guard.
func (s *Server) dialTunnel(r *http.Request, network, addr string) (net.Conn, error) {
	c, err := s.dialer.DialContext(r.Context(), network, addr)
	return heldConn(r, c, err) // the tunnel's connection slot (agents.go)
}

// tunnelError answers a CONNECT whose tunnel dial failed.
func (s *Server) tunnelError(w io.Writer, ctx *goproxy.ProxyCtx, err error) {
	e := asError(err)
	if e.Code == CodeUpstreamError {
		e.Message = "cannot reach " + ctx.Req.URL.Host
	}
	_ = e.Response(ctx.Req).Write(w)
}

// guardHeads wraps an agent connection in the head guard (package h1):
// a head with both Content-Length and Transfer-Encoding is refused 400 on
// the raw connection and recorded.
func (s *Server) guardHeads(c net.Conn, agent string) net.Conn {
	return h1.Guard(c, func(c net.Conn, e *Error) {
		s.refuseRaw(c, e, &event{start: time.Now(), agent: agent, method: "?"})
	})
}

// refuseRaw answers e on an agent connection no HTTP server writes to (a
// refusal before or instead of parsing) and records ev as failed with e.
// The caller ends the connection.
func (s *Server) refuseRaw(c net.Conn, e *Error, ev *event) {
	ev.fail(e)
	s.record(ev)
	var b bytes.Buffer
	_ = e.Response(nil).Write(&b)
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write(b.Bytes())
}

// agentTLSConfig is the server config of a MITM'd connection from remote:
// an agent on this host (a loopback address, a Unix socket) gets the one
// without post-quantum key exchange (certs.Cache.LocalTLSConfig says why),
// any other the default.
func agentTLSConfig(c *certs.Cache, host string, remote net.Addr) *tls.Config {
	if _, unix := remote.(*net.UnixAddr); unix {
		return c.LocalTLSConfig(host)
	}
	if remote == nil {
		return c.TLSConfig(host)
	}
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil && ap.Addr().Unmap().IsLoopback() {
		return c.LocalTLSConfig(host)
	}
	return c.TLSConfig(host)
}
