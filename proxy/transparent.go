package proxy

// The transparent door: connections redirected to airlock (serve
// --transparent, or an isolated run) arrive with their original
// destination and the TLS SNI or plain-HTTP Host instead of a CONNECT.
// HandleTransparent runs them through the same decision a CONNECT gets.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/transparent"
)

// ErrNoServerName: a redirected connection carried neither SNI nor Host,
// and no rule allows its original IP address.
var ErrNoServerName = errors.New("redirected connection names no host (no TLS SNI, no HTTP Host)")

// HandleTransparent serves one redirected connection as if
// `CONNECT c.ServerName:port` had arrived authenticated as c.Agent, with
// no "200 Connection established": identify, ConnectDecision, then MITM
// and inject, tunnel, or deny. A connection without a name is judged by
// its original IP address (rules rarely allow one, so it is normally
// denied, with the reason logged). Plain HTTP (c.TLS false) is served by
// the same loop as plain HTTP inside a CONNECT tunnel. The guarded dial
// still refuses loopback and private networks. c is always closed.
func (s *Server) HandleTransparent(ctx context.Context, c *transparent.Conn) {
	if c.Proxy {
		s.serveHandedProxyConn(c)
		return
	}
	start := time.Now()
	host, port := c.ServerName, int(c.OrigDst.Port())
	if host == "" {
		host = c.OrigDst.Addr().Unmap().String()
	} else {
		host, _ = connectTarget(net.JoinHostPort(host, strconv.Itoa(port)))
	}
	ev := &event{start: start, agent: c.Agent, method: http.MethodConnect, host: host, port: port, door: door.Transparent}
	if e := s.transparentAgent(c.Agent); e != nil {
		s.denyTransparent(c, ev, e, "agent not registered")
		return
	}
	pol := s.Policy()
	action, rule := pol.ConnectDecision(c.Agent, host, port)
	if rule != nil {
		ev.rule = rule.Name
	}
	if action == policy.ActionDeny && reporting(pol) {
		ev.decision, ev.code, ev.status = decisionWouldDeny, CodeAccessDenied, http.StatusOK
		action = policy.ActionTunnel
	}
	switch action {
	case policy.ActionDeny:
		reason := "policy"
		if c.ServerName == "" {
			reason = ErrNoServerName.Error()
		}
		s.denyTransparent(c, ev, denied(host, rule), reason)
	case policy.ActionAsk: // no rule names the host: hold the connection for a person, then tunnel
		if e := s.awaitUnmatched(ctx, c.Agent, http.MethodConnect, host, port, ""); e != nil {
			s.denyTransparent(c, ev, e, "approval")
			return
		}
		s.tunnelTransparent(ctx, c, ev)
	case policy.ActionTunnel:
		s.tunnelTransparent(ctx, c, ev)
	default:
		s.mitmTransparent(c, ev)
	}
}

// serveHandedProxyConn serves a connection an isolated command made to the
// proxy port (c.Proxy) exactly as the proxy listener serves one it
// accepted: sniffed, then CONNECT or plain HTTP with the client's own
// Proxy-Authorization, or the RPC door. The run hands it over instead of
// splicing it, so its bytes do not pass through a second process.
func (s *Server) serveHandedProxyConn(c *transparent.Conn) {
	s.mu.Lock()
	up := s.frontL != nil // Serve has started the front door
	s.mu.Unlock()
	if !up {
		_ = c.Close()
		return
	}
	s.dispatch(c) // server.go
}

// transparentAgent checks that the configured agent exists and is enabled.
func (s *Server) transparentAgent(agent string) *Error {
	v := s.Vault()
	if v == nil {
		return vaultLocked()
	}
	if a := v.Snapshot().Agents[agent]; agent == "" || a == nil || a.Disabled {
		return newError(http.StatusProxyAuthRequired, CodeAuthFailed, "redirected connections are mapped to agent "+strconv.Quote(agent)+", which is not registered",
			"`airlock agent add NAME`, then point --transparent-agent / --transparent-source at it")
	}
	return nil
}

// denyTransparent records the refusal and closes c. A plain-HTTP client
// gets the JSON error as the answer to its request; a TLS client gets it
// inside TLS with a leaf for the host, as a denied CONNECT does
// (refuse.go), within the agent's connection cap (over it, or when the
// cap is the reason, the connection just closes).
func (s *Server) denyTransparent(c *transparent.Conn, ev *event, e *Error, reason string) {
	ev.fail(e)
	s.record(ev)
	s.log.Warn("transparent connection refused", fieldAgent(ev.agent), fieldHost(ev.host+":"+itoa(ev.port)),
		zap.String("reason", reason), zap.String("orig_dst", c.OrigDst.String()))
	if c.TLS {
		if e.Code == CodeTooManyConns {
			_ = c.Close()
			return
		}
		release, ok := s.guard.conns.acquire(ev.agent)
		if !ok {
			_ = c.Close()
			return
		}
		defer release()
		s.answerDeniedInside(c, ev.host, e) // closes c
		return
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	resp := e.Response(&http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1})
	resp.Close = true
	_ = resp.Write(c)
}

// tunnelTransparent splices c to the destination through the dial guard.
func (s *Server) tunnelTransparent(ctx context.Context, c *transparent.Conn, ev *event) {
	defer c.Close()
	release, ok := s.guard.conns.acquire(ev.agent)
	if !ok {
		s.denyTransparent(c, ev, s.tooManyConns(ev.agent), "connection cap")
		return
	}
	defer release()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	up, err := s.dialer.DialContext(dctx, "tcp", net.JoinHostPort(ev.host, itoa(ev.port)))
	cancel()
	if err != nil {
		ev.decision = ""
		s.denyTransparent(c, ev, asError(err), "dial")
		return
	}
	defer up.Close()
	if ev.decision == "" {
		ev.decision = decisionTunnel
	}
	ev.status = http.StatusOK
	s.record(ev)
	raw, rest := c.Unwrap() // splice the socket itself, not the peek's wrapper
	if len(rest) > 0 {
		if _, err := up.Write(rest); err != nil {
			return
		}
	}
	spliceConns(raw, up)
}

// mitmTransparent terminates c's TLS (or reads its plain HTTP) and serves
// the requests inside with the rules' injection, as for a CONNECT.
func (s *Server) mitmTransparent(c *transparent.Conn, ev *event) {
	release, ok := s.guard.conns.acquire(ev.agent)
	if !ok {
		s.denyTransparent(c, ev, s.tooManyConns(ev.agent), "connection cap")
		return
	}
	t := &tunnel{agent: ev.agent, host: ev.host, port: ev.port, hostPort: net.JoinHostPort(ev.host, itoa(ev.port)), door: door.Transparent}
	s.serveMITM(&releaseConn{Conn: c, release: release}, t) // front.go
}

// spliceConns copies both ways until both directions end.
func spliceConns(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go spliceCopier{dst: a, src: b}.run(done)
	go spliceCopier{dst: b, src: a}.run(done)
	<-done
	<-done
}

// spliceCopier copies one direction of a spliced tunnel and half-closes.
type spliceCopier struct{ dst, src net.Conn }

func (p spliceCopier) run(done chan<- struct{}) {
	_, _ = io.Copy(p.dst, p.src)
	if cw, ok := p.dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else {
		_ = p.dst.Close()
	}
	done <- struct{}{}
}
