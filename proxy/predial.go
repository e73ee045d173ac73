package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/airlock/airlock/proxy/internal/h1"
	"github.com/airlock/airlock/proxy/internal/tlsverify"
)

// The first request to a new host used to pay, in series: the CONNECT,
// the leaf mint, the agent's TLS handshake, then the upstream dial and
// TLS handshake, then the request. The CONNECT already names the target,
// so on accepting it airlock now starts the leaf mint (certs.Prewarm) and,
// for a host the transport has not dialled lately, the upstream dial and
// handshake (through the same guarded dialer, so the SSRF guard, the
// self-address check and the corporate upstream proxy apply). Both run
// while the agent's handshake does. The transport's TLS dial
// (DialTLSContext) takes that connection for the tunnel's first request;
// an unused one is closed after predialTTL. Upstream TLS sessions are
// resumed through the transport's ClientSessionCache.
//
// Hooks: front.go's MITM hijack calls acceptMITM instead of mitm;
// server.go's New calls installPredial after building the transport
// (which also sizes the transport's per-connection buffers).

const (
	// predialTTL is how long a predialled connection waits for its request.
	predialTTL = 10 * time.Second
	// predialRecent: a host dialled within this time has connections in
	// the transport's pool (IdleConnTimeout is 90 s), so it is not
	// predialled: a keep-alive agent reopening tunnels must not cost the
	// upstream a handshake per CONNECT.
	predialRecent = 60 * time.Second
	// maxPredialHosts bounds both maps; the recent-dial map is cleared
	// when full.
	maxPredialHosts = 4096
	// upstreamBufferSize is the transport's per-connection buffer size.
	upstreamBufferSize = 2 << 10
	// upstreamHandshakeTimeout matches the transport's TLSHandshakeTimeout.
	upstreamHandshakeTimeout = 10 * time.Second
)

// predialer holds the upstream connections dialled ahead of a tunnel's
// first request.
type predialer struct {
	mu     sync.Mutex // guards ready and recent
	ready  map[string]*predialed
	recent map[string]time.Time // host:port -> last TLS dial
	h2     map[string]bool      // host:port whose last handshake chose h2
	cfgs   clientConfigs
}

// clientConfigs is one client TLS config per upstream host, shared by
// the host's connections. A tls.Conn keeps its config for its whole
// life, and a clone per connection was ~0.35 KiB of every stream's live
// heap; a Config is safe to share once it is not modified.
type clientConfigs struct {
	mu     sync.Mutex // guards base, byHost and chains
	base   *tls.Config
	byHost map[string]*tls.Config // at most maxPredialHosts; cleared when full
	chains *tlsverify.Cache       // the chains verified against base's roots
}

// get is base as handshakeUpstream dials host with it: ServerName set,
// HTTP/2 offered when forceH2 and base names no protocols, and the
// server's chain verified once for all connections that present it
// (package tlsverify). A new base (pointer) drops the configs made from
// the old one, and the chains verified with its roots.
func (c *clientConfigs) get(base *tls.Config, host string, forceH2 bool) *tls.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base != base {
		c.chains = &tlsverify.Cache{}
	}
	if c.base != base || len(c.byHost) >= maxPredialHosts {
		c.base, c.byHost = base, nil
	}
	if cfg := c.byHost[host]; cfg != nil {
		return cfg
	}
	cfg := base.Clone()
	cfg.ServerName = host
	if len(cfg.NextProtos) == 0 && forceH2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	c.chains.Apply(cfg)
	if c.byHost == nil {
		c.byHost = map[string]*tls.Config{}
	}
	c.byHost[host] = cfg
	return cfg
}

// predialed is one connection being (or done being) dialled.
type predialed struct {
	done  chan struct{} // closed when conn/err are set
	conn  net.Conn
	err   error
	timer *time.Timer // closes an unused conn
}

// acceptMITM serves a MITM'd CONNECT on its own goroutine, so net/http's
// connection goroutine returns and frees the buffers it holds for the
// hijacked connection (a reader, two writers: ~10 KiB per tunnel, for the
// tunnel's whole life). It first starts the leaf mint and the upstream
// predial.
func (s *Server) acceptMITM(c net.Conn, t *tunnel) {
	s.certs.Prewarm(t.host)
	if t.port != 80 {
		s.pre.start(s, t.hostPort)
	}
	go s.mitm(c, t)
}

// agentHandshakeTimeout bounds the agent's TLS handshake.
const agentHandshakeTimeout = 10 * time.Second

// handshakeAgent runs the agent's TLS handshake (handshakeApart) under
// agentHandshakeTimeout. Its context ends with it: made in the frame of
// the connection's goroutine, which serves the tunnel for its whole
// life, the context and its timer stayed alive as long as the tunnel.
func (s *Server) handshakeAgent(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentHandshakeTimeout)
	defer cancel()
	return s.handshakeApart(ctx, tc)
}

// handshakeApart runs the agent's TLS handshake on one of the deep-stack
// workers (package deep). A handshake (ML-KEM, the leaf's signature) needs
// a deep stack for a moment; the connection's goroutine then serves the
// agent for as long as it stays, and a stream waits in it for minutes: it
// would keep whatever stack it grew to until GC cycles halve it, one
// halving per cycle. A worker keeps it for the next handshake instead.
func (s *Server) handshakeApart(ctx context.Context, tc *tls.Conn) error {
	ch := make(chan error, 1)
	s.deep.Go(func() { ch <- tc.HandshakeContext(ctx) })
	return <-ch
}

// installPredial makes the transport dial TLS itself (dialTLS), taking
// predialled connections first.
func (s *Server) installPredial() {
	s.transport.DialTLSContext = s.dialTLS
	// Every upstream connection holds a read and a write buffer for its
	// whole life, idle in the pool included (4 KiB each by default).
	// Heads are small and bodies larger than the buffer bypass it.
	s.transport.ReadBufferSize, s.transport.WriteBufferSize = upstreamBufferSize, upstreamBufferSize
	// Settle the transport's lazy HTTP/2 set-up (it appends "h2" to
	// TLSClientConfig.NextProtos on first use) before any predial clones
	// the config: CloseIdleConnections runs it.
	s.transport.CloseIdleConnections()
}

// start dials addr in the background unless it was dialled recently or a
// predial of it is pending.
func (p *predialer) start(s *Server, addr string) {
	now := time.Now()
	p.mu.Lock()
	if p.ready == nil {
		p.ready, p.recent = map[string]*predialed{}, map[string]time.Time{}
	}
	if last, ok := p.recent[addr]; ok && now.Sub(last) < predialRecent || p.ready[addr] != nil || len(p.ready) >= maxPredialHosts {
		p.mu.Unlock()
		return
	}
	p.markLocked(addr, now)
	pd := &predialed{done: make(chan struct{})}
	p.ready[addr] = pd
	p.mu.Unlock()
	s.deep.Go(func() { // a handshake: a deep stack (handshakeApart)
		ctx, cancel := context.WithTimeout(s.base, upstreamHandshakeTimeout)
		pd.conn, pd.err = s.handshakeUpstream(ctx, addr)
		cancel()
		p.mu.Lock()
		if pd.err == nil && p.ready[addr] == pd {
			pd.timer = time.AfterFunc(predialTTL, func() { p.expire(addr, pd) })
		} else if p.ready[addr] == pd {
			delete(p.ready, addr) // a failed predial: the request dials (and reports) itself
		}
		p.mu.Unlock()
		close(pd.done)
	})
}

func (p *predialer) markLocked(addr string, now time.Time) {
	if len(p.recent) >= maxPredialHosts {
		clear(p.recent)
	}
	p.recent[addr] = now
}

// expire closes a predialled connection no request took.
func (p *predialer) expire(addr string, pd *predialed) {
	p.mu.Lock()
	mine := p.ready[addr] == pd
	if mine {
		delete(p.ready, addr)
	}
	p.mu.Unlock()
	if mine {
		_ = pd.conn.Close()
	}
}

// take returns the predialled connection of addr, waiting for a pending
// predial (it started before this request, so it is the quickest way to a
// connection); nil when there is none, it failed, or ctx ended.
func (p *predialer) take(ctx context.Context, addr string) net.Conn {
	now := time.Now()
	p.mu.Lock()
	if p.recent == nil {
		p.ready, p.recent = map[string]*predialed{}, map[string]time.Time{}
	}
	p.markLocked(addr, now)
	pd := p.ready[addr]
	if pd != nil {
		delete(p.ready, addr)
	}
	p.mu.Unlock()
	if pd == nil {
		return nil
	}
	select {
	case <-pd.done:
	case <-ctx.Done():
		go func() { <-pd.done; closeIfSet(pd) }()
		return nil
	}
	if pd.err != nil {
		return nil
	}
	if pd.timer != nil {
		pd.timer.Stop()
	}
	return pd.conn
}

func closeIfSet(pd *predialed) {
	if pd.conn != nil {
		_ = pd.conn.Close()
	}
}

// noteProto remembers whether addr's upstream chose h2 (the lean HTTP/1.1
// client leaves such hosts to the transport).
func (p *predialer) noteProto(addr, proto string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if proto != "h2" {
		delete(p.h2, addr)
		return
	}
	if p.h2 == nil || len(p.h2) >= maxPredialHosts {
		p.h2 = map[string]bool{}
	}
	p.h2[addr] = true
}

// knownH2 reports whether u's host chose h2 when last dialled.
func (p *predialer) knownH2(u *url.URL) bool {
	if u.Scheme != "https" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h2[addr]
}

// offer parks c, a fresh connection to addr that negotiated h2, for the
// transport's dial (take); it is closed when a predial is pending already.
func (p *predialer) offer(addr string, c net.Conn) {
	pd := &predialed{done: make(chan struct{}), conn: c}
	close(pd.done)
	p.mu.Lock()
	if p.ready == nil {
		p.ready, p.recent = map[string]*predialed{}, map[string]time.Time{}
	}
	if p.ready[addr] != nil {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.ready[addr] = pd
	pd.timer = time.AfterFunc(predialTTL, func() { p.expire(addr, pd) })
	p.mu.Unlock()
}

// dialTLS is the transport's DialTLSContext: a predialled connection to
// addr if there is one, else a fresh guarded dial and handshake.
func (s *Server) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	if c := s.pre.take(ctx, addr); c != nil {
		return c, nil
	}
	return s.handshakeUpstream(ctx, addr)
}

// handshakeUpstream dials addr through the guarded dialer and runs the
// TLS handshake as the transport would (its TLSClientConfig, the host as
// server name, HTTP/2 offered, sessions resumed from its cache).
func (s *Server) handshakeUpstream(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	raw, err := s.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := s.pre.cfgs.get(s.transport.TLSClientConfig, host, s.transport.ForceAttemptHTTP2)
	tc := tls.Client(h1.TLSSocket(raw), cfg) // the lean client checks it for leftovers cheaply
	hctx, cancel := context.WithTimeout(ctx, upstreamHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	s.pre.noteProto(addr, tc.ConnectionState().NegotiatedProtocol)
	return tc, nil
}
