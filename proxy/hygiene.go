package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/proxy/internal/scrub"
)

const (
	defaultMaxConns     = 256
	defaultWriteTimeout = 60 * time.Second
)

// viaAirlock is the Via value airlock adds to every forwarded request; an
// inbound request carrying it has been through airlock already.
const viaAirlock = "1.1 airlock"

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

// writeDeadlineConn bounds every Write on an agent connection: an agent
// that stops reading a response fails the write after at most d instead
// of pinning the forwarding goroutine and its buffers, while a long stream
// that keeps moving is never cut (unlike http.Server's WriteTimeout, which
// bounds the whole response). The deadline is pushed forward only once
// less than d/2 of it is left, so a busy connection does not reset a timer
// on every write; a stalled write fails after between d/2 and d.
type writeDeadlineConn struct {
	net.Conn
	d     time.Duration
	until atomic.Int64 // the deadline set, in Unix nanoseconds
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	now := time.Now()
	if c.until.Load()-now.UnixNano() < int64(c.d/2) {
		deadline := now.Add(c.d)
		c.until.Store(deadline.UnixNano())
		_ = c.Conn.SetWriteDeadline(deadline)
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline sets a deadline of the caller's (a refusal's short
// one); the next Write replaces it once it is near.
func (c *writeDeadlineConn) SetWriteDeadline(t time.Time) error {
	c.until.Store(t.UnixNano())
	return c.Conn.SetWriteDeadline(t)
}
