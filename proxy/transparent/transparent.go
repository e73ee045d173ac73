package transparent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Defaults for the bounded peek.
const (
	DefaultMaxPeek     = 16 << 10
	DefaultPeekTimeout = 5 * time.Second
)

// Log field names.
const (
	logFieldSource  = "source"
	logFieldOrigDst = "orig_dst"
	logFieldServer  = "server_name"
	logFieldAgent   = "agent"
	logFieldResult  = "result"
	logFieldTLS     = "tls"
)

// Results counted in airlock_transparent_connections_total.
const (
	resultHanded        = "handed"
	resultNoOrigDst     = "no_orig_dst"
	resultLoop          = "loop"
	resultUnknownSource = "unknown_source"
	resultPeekFailed    = "peek_failed"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrNotRedirected: the connection has no original destination other
	// than the listener itself (it was not redirected).
	ErrNotRedirected = errors.New("connection was not redirected")
	// ErrUnknownSource: no Config.Sources prefix names the client and no
	// default agent is configured.
	ErrUnknownSource = errors.New("no agent is configured for this source address")
)

// Conn is one redirected connection. Reads start with the bytes the
// listener peeked (the whole ClientHello or request head), so the handler
// sees the stream exactly as the client sent it.
type Conn struct {
	net.Conn
	// OrigDst is where the client meant to connect.
	OrigDst netip.AddrPort
	// ServerName is the TLS SNI, or the HTTP Host without port, or "" when
	// the first bytes named none (the handler may fall back to OrigDst or a
	// DNS mapping of its own).
	ServerName string
	// TLS reports whether the first bytes are a TLS handshake record.
	TLS bool
	// Agent is the agent configuration names for this connection.
	Agent string
	// Proxy marks a connection an isolated command made to the proxy port
	// its HTTPS_PROXY names (handed off by `airlock run --isolate`): the
	// receiver serves it as its proxy port serves an accepted client
	// (CONNECT with the client's own Proxy-Authorization), not as a
	// redirected connection.
	Proxy bool
}

// Unwrap returns the accepted connection itself and the peeked bytes not
// read from c yet. A handler that only relays c's bytes writes those
// first and then copies from the connection directly, so the copy can use
// the kernel's splice (a wrapper hides the TCP socket from io.Copy). c
// must not be read after Unwrap; closing either closes the connection.
func (c *Conn) Unwrap() (net.Conn, []byte) {
	if rc, ok := c.Conn.(*replayConn); ok {
		return rc.Conn, rc.rest
	}
	return c.Conn, nil
}

// Handler receives every attributed connection and owns it: it must close
// c. ctx is cancelled when the listener shuts down.
type Handler func(ctx context.Context, c *Conn)

// SourceAgent maps a source network to an agent name.
type SourceAgent struct {
	Prefix netip.Prefix
	Agent  string
}

// Config configures a [Listener]. The zero value is usable with Agent set.
type Config struct {
	// Agent is the agent for every connection no Sources prefix holds.
	Agent string
	// Sources maps client networks to agents; the longest prefix wins.
	Sources []SourceAgent
	// TProxy: the listener receives TPROXY'd connections (socket bound
	// with IP_TRANSPARENT, see [ListenTProxy]); the original destination is
	// the accepted socket's local address.
	TProxy bool
	// MaxPeek bounds the bytes read to find the SNI/Host (default
	// DefaultMaxPeek); PeekTimeout bounds the time (default
	// DefaultPeekTimeout).
	MaxPeek     int
	PeekTimeout time.Duration
	// Log gets one line per refused connection (Warn) and per hand-off
	// (Debug); nil discards.
	Log *zap.Logger
	// Registerer gets airlock_transparent_connections_total; nil skips.
	Registerer prometheus.Registerer
	// OrigDst overrides the original-destination lookup (tests, or a
	// forwarder that learnt it out of band). Nil uses SO_ORIGINAL_DST or,
	// with TProxy, the local address.
	OrigDst func(net.Conn) (netip.AddrPort, error)
}

// Listener accepts redirected connections and hands them to a Handler.
type Listener struct {
	ln      net.Listener
	cfg     Config
	handler Handler
	conns   *prometheus.CounterVec

	wg sync.WaitGroup // one per connection being peeked or handled
}

// New wraps ln. Call [Listener.Serve] to start accepting.
func New(ln net.Listener, cfg Config, h Handler) (*Listener, error) {
	if h == nil {
		return nil, errors.New("transparent: nil handler")
	}
	for _, s := range cfg.Sources {
		if !s.Prefix.IsValid() || s.Agent == "" {
			return nil, fmt.Errorf("transparent: source mapping %v -> %q: want a valid prefix and an agent name", s.Prefix, s.Agent)
		}
	}
	if cfg.MaxPeek <= 0 {
		cfg.MaxPeek = DefaultMaxPeek
	}
	if cfg.PeekTimeout <= 0 {
		cfg.PeekTimeout = DefaultPeekTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	l := &Listener{ln: ln, cfg: cfg, handler: h, conns: newConnCounter(cfg.Registerer)}
	return l, nil
}

func newConnCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_transparent_connections_total",
		Help: "Connections accepted by the transparent door, by result (handed, no_orig_dst, loop, unknown_source, peek_failed).",
	}, []string{"result"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return c
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts until ctx is cancelled or the listener fails, then closes
// the listener, waits for the connections it started, and returns nil
// after a cancel or the accept error.
func (l *Listener) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.ln.Close() })
	defer stop()
	defer l.wg.Wait()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("transparent: accept: %w", err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serveConn(ctx, c)
		}()
	}
}

// serveConn attributes one connection and hands it over, or refuses it.
func (l *Listener) serveConn(ctx context.Context, c net.Conn) {
	tc, result, err := l.prepare(c)
	if err != nil {
		l.conns.WithLabelValues(result).Inc()
		l.cfg.Log.Warn("transparent connection refused",
			zap.String(logFieldSource, c.RemoteAddr().String()),
			zap.String(logFieldResult, result), zap.Error(err))
		c.Close()
		return
	}
	l.conns.WithLabelValues(resultHanded).Inc()
	if ce := l.cfg.Log.Check(zap.DebugLevel, "transparent connection"); ce != nil {
		ce.Write(zap.String(logFieldSource, c.RemoteAddr().String()),
			zap.String(logFieldOrigDst, tc.OrigDst.String()),
			zap.String(logFieldServer, tc.ServerName), zap.Bool(logFieldTLS, tc.TLS),
			zap.String(logFieldAgent, tc.Agent))
	}
	l.handler(ctx, tc)
}

// prepare recovers destination, agent and name; on failure it returns the
// metric result.
func (l *Listener) prepare(c net.Conn) (*Conn, string, error) {
	dst, err := l.origDst(c)
	if err != nil {
		return nil, resultNoOrigDst, err
	}
	if isSelf(c, dst) {
		return nil, resultLoop, fmt.Errorf("original destination %s is the listener: %w", dst, ErrNotRedirected)
	}
	src := addrPortOf(c.RemoteAddr())
	agent, ok := l.agentFor(src.Addr())
	if !ok {
		return nil, resultUnknownSource, fmt.Errorf("source %s: %w", src, ErrUnknownSource)
	}
	p, err := Peek(c, l.cfg.MaxPeek, l.cfg.PeekTimeout)
	if err != nil {
		return nil, resultPeekFailed, err
	}
	return &Conn{Conn: p.Conn, OrigDst: dst, ServerName: p.ServerName, TLS: p.TLS, Agent: agent}, "", nil
}

func (l *Listener) origDst(c net.Conn) (netip.AddrPort, error) {
	switch {
	case l.cfg.OrigDst != nil:
		return l.cfg.OrigDst(c)
	case l.cfg.TProxy:
		return addrPortOf(c.LocalAddr()), nil
	}
	return OriginalDst(c)
}

// agentFor returns the agent of the longest matching source prefix, else
// the default agent.
func (l *Listener) agentFor(a netip.Addr) (string, bool) {
	a = a.Unmap()
	best, agent := -1, ""
	for _, s := range l.cfg.Sources {
		if s.Prefix.Contains(a) && s.Prefix.Bits() > best {
			best, agent = s.Prefix.Bits(), s.Agent
		}
	}
	if best >= 0 {
		return agent, true
	}
	return l.cfg.Agent, l.cfg.Agent != ""
}

// isSelf reports whether dst is the socket's own local address: the client
// connected straight to the listener.
func isSelf(c net.Conn, dst netip.AddrPort) bool {
	local := addrPortOf(c.LocalAddr())
	return local.Port() == dst.Port() && local.Addr().Unmap() == dst.Addr().Unmap()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
