package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/elazarl/goproxy"
)

// connCounter caps the CONNECT tunnels (MITM'd or spliced) each agent has
// open at once, so one agent cannot exhaust airlock's file descriptors and
// goroutines.
type connCounter struct {
	max  int
	mu   sync.Mutex // guards open
	open map[string]int
}

// acquire takes a slot for agent; release gives it back (once).
func (c *connCounter) acquire(agent string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = make(map[string]int)
	}
	if c.max > 0 && c.open[agent] >= c.max {
		return nil, false
	}
	c.open[agent]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.open[agent]--; c.open[agent] <= 0 {
				delete(c.open, agent)
			}
		})
	}, true
}

type releaseKey struct{}

// holdTunnel charges a spliced CONNECT tunnel to its agent's connection
// budget; the slot is given back when the tunnel's upstream connection
// closes (heldConn). Over budget it returns the refusal.
func (s *Server) holdTunnel(ctx *goproxy.ProxyCtx, ev *event) *goproxy.ConnectAction {
	release, ok := s.guard.conns.acquire(ev.agent)
	if !ok {
		return s.rejectConnect(ctx, ev, s.tooManyConns(ev.agent))
	}
	hold := &tunnelHold{release: release, track: func(c net.Conn) func() {
		return s.TrackAgent(ev.agent, func() { _ = c.Close() }) // closed on revocation (revoke.go)
	}}
	ctx.Req = ctx.Req.WithContext(context.WithValue(ctx.Req.Context(), releaseKey{}, hold))
	return nil
}

// holdMITM charges a MITM'd CONNECT to its agent's connection budget; the
// slot is given back when the hijacked connection closes. Over budget, the
// CONNECT is refused with 429 TOO_MANY_CONNECTIONS.
func (s *Server) holdMITM(ctx *goproxy.ProxyCtx, ev *event, a *goproxy.ConnectAction) *goproxy.ConnectAction {
	release, ok := s.guard.conns.acquire(ev.agent)
	if !ok {
		return s.rejectConnect(ctx, ev, s.tooManyConns(ev.agent))
	}
	hijack := a.Hijack
	a.Hijack = func(r *http.Request, c net.Conn, pc *goproxy.ProxyCtx) {
		untrack := s.TrackAgent(ev.agent, func() { _ = c.Close() }) // closed on revocation (revoke.go)
		hijack(r, &releaseConn{Conn: c, release: func() { untrack(); release() }}, pc)
	}
	return a
}

func (s *Server) tooManyConns(agent string) *Error {
	e := newError(http.StatusTooManyRequests, CodeTooManyConns,
		"agent "+agent+" already has "+strconv.Itoa(s.guard.conns.max)+" connections open through airlock",
		"reuse connections (keep-alive) or raise serve --max-conns-per-agent")
	e.RetryAfter = 1
	return e
}

// heldConn ties the slot taken by holdConn to the tunnel's upstream
// connection (or gives it back if the dial failed).
func heldConn(r *http.Request, c net.Conn, err error) (net.Conn, error) {
	hold, _ := r.Context().Value(releaseKey{}).(*tunnelHold)
	if hold == nil {
		return c, err
	}
	if err != nil {
		hold.release()
		return nil, err
	}
	untrack := hold.track(c)
	return &releaseConn{Conn: c, release: func() { untrack(); hold.release() }}, nil
}

// tunnelHold is what holdTunnel leaves for the tunnel's dial: the slot to
// give back and the revocation registration of the upstream connection.
type tunnelHold struct {
	release func()
	track   func(net.Conn) (untrack func())
}

// releaseConn gives its connection slot back on Close.
type releaseConn struct {
	net.Conn
	release func()
}

func (c *releaseConn) Close() error {
	c.release()
	return c.Conn.Close()
}
