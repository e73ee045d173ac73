package proxy

// Agent connections outside the pipeline: the per-agent cap on open
// tunnels, airlock's own addresses (never dialled), sniffing, and the
// net/http reference loop for MITM'd connections.

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/airlock/airlock/proxy/internal/conn"
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

const (
	defaultMaxConns     = 256
	defaultWriteTimeout = 60 * time.Second
)

// guards holds the hardening state of a Server: the per-agent connection
// counts and the addresses airlock itself listens on (rate-limit buckets
// are in the state store).
type guards struct {
	conns        connCounter
	writeTimeout time.Duration // per write on agent connections

	mu   sync.Mutex // guards self
	self []netip.AddrPort
}

func (g *guards) configure(cfg Config) {
	g.conns.max = cfg.MaxConnsPerAgent
	if g.conns.max == 0 {
		g.conns.max = defaultMaxConns
	}
	g.writeTimeout = cfg.WriteTimeout
	if g.writeTimeout == 0 {
		g.writeTimeout = defaultWriteTimeout
	}
}

// ProtectAddr adds an address airlock listens on (the admin port, say) to
// the destinations it refuses to dial, whatever allow_networks says. Serve
// adds the proxy listeners itself.
func (s *Server) ProtectAddr(a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	s.guard.mu.Lock()
	s.guard.self = append(s.guard.self, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	s.guard.mu.Unlock()
}

// isSelf reports whether dialling ip:port would reach airlock itself.
func (s *Server) isSelf(ip netip.Addr, port uint16) bool {
	s.mu.Lock()
	for _, l := range s.listeners {
		if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil && !s.guardKnows(ap) {
			s.ProtectAddr(l.Addr())
		}
	}
	s.mu.Unlock()
	ip = ip.Unmap()
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	for _, ap := range s.guard.self {
		if ap.Port() != port {
			continue
		}
		if ap.Addr() == ip || ap.Addr().IsUnspecified() && (ip.IsLoopback() || ip.IsUnspecified() || localAddr(ip)) {
			return true
		}
	}
	return false
}

func (s *Server) guardKnows(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	for _, a := range s.guard.self {
		if a == ap {
			return true
		}
	}
	return false
}

var (
	localOnce  sync.Once
	localAddrs []netip.Addr
)

// localAddr reports whether ip belongs to one of this machine's interfaces.
func localAddr(ip netip.Addr) bool {
	localOnce.Do(func() {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				localAddrs = append(localAddrs, p.Addr().Unmap())
			}
		}
	})
	for _, a := range localAddrs {
		if a == ip {
			return true
		}
	}
	return false
}

// selfDialError is what the dial guard answers for airlock's own address.
func selfDialError(addr string) *Error {
	return loopError("destination " + addr + " is airlock's own listener")
}

// sniff reads the first byte of c (waiting at most timeout) without
// consuming it: the returned conn replays it (package conn).
func sniff(c net.Conn, timeout time.Duration) (first byte, pc net.Conn, err error) {
	return conn.Sniff(c, timeout)
}

// serveInnerNetHTTP serves a MITM'd connection with net/http.Server
// instead of the lean loop (Config.InnerNetHTTP): the reference the lean
// loop is measured against (cmd/airlock-bench --inner-net-http). It keeps
// the front door's limits; Shutdown does not track these connections.
// Differences the lean loop's suite shows (TestInnerSuiteOnNetHTTP): an
// HTTP/1.0 request is answered HTTP/1.0, and a CONNECT inside the tunnel
// reaches the pipeline (421) instead of being refused as a bad head (400).
func (s *Server) serveInnerNetHTTP(c net.Conn, t *tunnel) {
	// t.ctx stays nil: each upstream request derives from net/http's
	// request context, cancelled when the agent goes.
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.servePipeline(w, r, t) }),
		ReadHeaderTimeout: s.front.ReadHeaderTimeout,
		IdleTimeout:       s.front.IdleTimeout,
		MaxHeaderBytes:    s.front.MaxHeaderBytes,
		ErrorLog:          s.front.ErrorLog,
	}
	conn.ServeOne(srv, c)
}
