// Package proxy is airlock's egress pipeline and its front doors.
//
// One listener serves two doors: a connection whose first byte is 0x00 is a
// SanctumAI RPC client (package rpc, through [Server.Judge], [Server.Forward]
// and [Server.Header]); anything else is an HTTP proxy client handled by
// goproxy (CONNECT) or directly (plain http:// requests). MITM'd TLS
// connections are served by a lean HTTP/1.1 loop (package internal/h1;
// net/http.Server with Config.InnerNetHTTP) or, when the agent chose h2, by
// package internal/h2.
//
// # The pipeline
//
// Every door's request goes through judge (judge.go): identify agent ▶
// normalise target ▶ grant (RPC) ▶ match rule ▶ approval, rate limit
// (state store), report mode (refuse.go) ▶ resolve credential ([Source])
// ▶ inject (inject.go) ▶ guarded dial (package egress) ▶ the response
// observer chain ([Observer], scrubber first) ▶ one audit line (zap, hash
// chain, metrics with door and operation labels).
//
// # Files
//
// server.go (Server, Config, listening, the dialer's hooks), front.go (the
// goproxy front door, MITM), httpdoor.go and judge.go (the pipeline),
// relay.go and forward.go (upstream), predial.go, inject.go, observe.go,
// meter.go, audit.go, metrics.go, refuse.go (error codes and every
// refusal), agents.go (authentication, connection caps, revocation),
// transparent.go, reload.go, admin.go (the admin listener and status).
//
// # Sub-packages
//
// door (request/decision shapes), errcode (codes, JSON errors), audit
// (audit file, async writer, field names), state (state store), source
// (external credential sources, reference resolution), rpc (SanctumAI
// door), transparent, approval, console, usage, sigv4; internal: scrub,
// egress, oauth2, placeholder, h1, h2, grpcwire, conn, bufpool, park (idle
// connections waiting without a goroutine), awsauth.
// None of them imports this package.
package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"go.uber.org/zap"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/internal/conn"
	"github.com/airlock/airlock/proxy/internal/deep"
	"github.com/airlock/airlock/proxy/internal/egress"
	"github.com/airlock/airlock/proxy/internal/h1"
	"github.com/airlock/airlock/proxy/internal/h2"
	"github.com/airlock/airlock/proxy/internal/oauth2"
	"github.com/airlock/airlock/proxy/internal/readmap"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/proxy/state"
	"github.com/airlock/airlock/proxy/usage"
	"github.com/airlock/airlock/vault"
)

// Config wires a Server.
type Config struct {
	Vault   *vault.Vault   // unlocked vault
	Policy  *policy.Policy // initial policy
	Certs   *certs.Cache   // leaf certificates for MITM
	Log     *zap.Logger    // audit and operational lines
	Metrics *Metrics       // nil: NewMetrics()

	UpstreamRoots *x509.CertPool // nil: system roots (SSL_CERT_FILE overrides them)

	ReadHeaderTimeout time.Duration // agent connections; default 10s
	IdleTimeout       time.Duration // agent connections; default 90s
	MaxHeaderBytes    int           // default 64 KiB
	MaxConnsPerAgent  int           // open CONNECT tunnels per agent; default 256, <0 unlimited
	WriteTimeout      time.Duration // per write to an agent (stalled readers); default 60s

	// Source is where credentials come from; nil: the vault ([VaultSource]).
	Source Source
	// Sources resolves reference credentials (vault.KindRef) from external
	// credential sources (package proxy/source); nil: references refused.
	Sources source.Resolver
	// State holds what must later be shared between replicas (rate-limit
	// buckets, OAuth2 tokens, ...); nil: in memory ([state.NewMemory]).
	State state.Store
	// Observers see every upstream response after the scrubber ([Observer]).
	Observers []Observer
	// Meter meters LLM requests and enforces budgets (meter.go); nil: off.
	// SetPolicy reloads its budgets and prices.
	Meter *usage.Meter
	// MeterStore, when set, is closed by Shutdown after the drain (the
	// usage file's last save).
	MeterStore io.Closer
	// RPC, when set, builds the handler of the RPC door (connections
	// starting 0x00) for the new server; nil: those connections are closed.
	RPC func(s *Server) ConnHandler
	// AuditLog, when set, also receives every audit line (hash-chained
	// file); Close it after Shutdown.
	AuditLog *audit.Log
	// Version is what /v1/status reports.
	Version string
	// InnerNetHTTP serves MITM'd connections with net/http.Server instead
	// of the lean HTTP/1.1 loop: a reference for measuring the loop.
	InnerNetHTTP bool
}

// ConnHandler serves one connection of a door until ctx ends.
type ConnHandler func(ctx context.Context, c net.Conn)

// Source is where the pipeline takes credentials from: given a credential
// path it returns the credential (value, kind, expiry, and the non-secret
// settings token kinds keep in Metadata). The vault is the one
// implementation here ([VaultSource]); external stores (package
// proxy/source) plug in through Config.Source.
//
// Errors: wrap [vault.ErrNotFound] for a path the source does not hold,
// [ErrSealed] while the source is locked (the vault sealed), anything else for a source that
// cannot answer (CREDENTIAL_SOURCE_UNAVAILABLE).
type Source interface {
	Fetch(ctx context.Context, path string) (*vault.Credential, error)
}

// VaultSource is the Source of a Server's vault: the snapshot current at
// each Fetch; sealed after Server.Seal.
type VaultSource struct{ s *Server }

// Fetch returns the credential at path from the vault.
func (v VaultSource) Fetch(_ context.Context, path string) (*vault.Credential, error) {
	vlt := v.s.Vault()
	if vlt == nil {
		return nil, ErrSealed
	}
	return vlt.Snapshot().Credential(path)
}

// The deep-stack workers (package deep): a new host needs three at once
// (its leaf, the agent's handshake, the upstream's), a burst of new hosts
// more; past the bound a job gets a goroutine of its own. An idle worker
// keeps the stack its deepest job grew, until GC cycles halve it, and
// exits after deepIdle: soon enough that an idle airlock is back to its
// idle goroutines within seconds (airlock-bench soak waited 60 s with a
// minute).
const (
	deepWorkers = 16
	deepIdle    = 10 * time.Second
)

// Server is a running airlock proxy. Its policy and vault can be swapped
// while it serves; each request uses the versions current when it started.
type Server struct {
	log     *zap.Logger
	metrics *Metrics
	certs   *certs.Cache
	deep    *deep.Pool // handshakes and leaf mints (predial.go)

	policy atomic.Pointer[policy.Policy]
	vault  atomic.Pointer[vault.Vault] // nil: sealed

	dialer    *egress.Dialer
	transport *http.Transport
	forward   *httputil.ReverseProxy
	tokens    *oauth2.Cache // oauth2 access tokens (package oauth2, in the state store)
	guard     guards        // connection caps, own addresses
	goproxy   *goproxy.ProxyHttpServer

	front  *http.Server // agent connections: CONNECT and plain http://; its limits bind the lean loop too
	frontL *conn.Listener
	inner  *h1.Server // the lean loop serving MITM'd connections (package h1)
	h2     *h2.Door   // MITM'd connections whose agent chose h2 (package h2)

	rpc          atomic.Pointer[ConnHandler] // RPC door; nil: refused
	source       Source                      // credentials ([Source])
	sources      source.Refs                 // reference credentials (package source)
	state        state.Store                 // rate limits, tokens, ... (package state)
	observers    []Observer                  // after the scrubber (observe.go)
	meter        *usage.Meter                // LLM usage and budgets (meter.go); nil: off
	meterStore   io.Closer                   // closed by Shutdown; nil: none
	meterClosed  atomic.Bool
	innerNetHTTP bool // Config.InnerNetHTTP

	ops opsState // status, reload, audit file, upstream proxy (admin.go)

	replacers readmap.Map[replacerKey, *scrub.Replacer] // scrubbers of static credentials (observe.go)
	pre       predialer                                 // upstream connections dialled on CONNECT (predial.go)
	revoked   agentConns                                // open connections by agent, closed on revocation (agents.go)

	approvals atomic.Pointer[approval.Queue]   // nil: approval rules fail closed (refuse.go)
	auditTap  atomic.Pointer[func(audit.Line)] // sees every audit line (SetAuditTap)

	mu        sync.Mutex // guards listeners
	listeners []net.Listener
	closing   atomic.Bool
	base      context.Context // cancelled by Shutdown: ends RPC connections
	cancel    context.CancelFunc
}

// New builds a Server; call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if cfg.Vault == nil || cfg.Policy == nil || cfg.Certs == nil || cfg.Log == nil {
		return nil, errors.New("proxy: Config needs Vault, Policy, Certs and Log")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{log: cfg.Log, metrics: cfg.Metrics, certs: cfg.Certs}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.policy.Store(cfg.Policy)
	s.vault.Store(cfg.Vault)
	s.source, s.state, s.observers, s.innerNetHTTP = cfg.Source, cfg.State, cfg.Observers, cfg.InnerNetHTTP
	s.meter, s.meterStore = cfg.Meter, cfg.MeterStore
	if s.source == nil {
		s.source = VaultSource{s}
	}
	s.sources.R, s.sources.Log = cfg.Sources, cfg.Log
	if s.state == nil {
		s.state = state.NewMemory()
	}
	s.dialer = egress.NewDialer(s.allowNetworks)
	s.dialer.Via = s.viaUpstreamProxy
	s.dialer.Self = s.isSelf
	s.guard.configure(cfg)
	s.transport = newTransport(s.dialer, cfg.UpstreamRoots)
	s.installPredial() // predial.go
	s.tokens = oauth2.New(oauth2.Config{Transport: s.transport, Vault: s.Vault, Log: s.log.Named("oauth2"), Store: s.state,
		Metrics: oauth2.Metrics{Requests: s.metrics.OAuth2TokenRequests, Expiry: s.metrics.OAuth2TokenExpiry}})
	s.forward = s.newForwarder()
	s.goproxy = s.newGoproxy()
	s.front = s.newHTTPServer(cfg, http.HandlerFunc(s.serveFront))
	s.inner = &h1.Server{ReadHeaderTimeout: s.front.ReadHeaderTimeout, IdleTimeout: s.front.IdleTimeout,
		MaxHeaderBytes: s.front.MaxHeaderBytes, Closing: s.closing.Load}
	s.h2 = h2.New(s.front, s.metrics.Registry, s.log)
	cfg.Certs.OnLookup = s.countCertLookup
	s.deep = deep.New(deepWorkers, deepIdle)
	cfg.Certs.Go = s.deep.Go
	if cfg.Version != "" {
		s.SetVersion(cfg.Version)
	}
	if cfg.AuditLog != nil {
		s.SetAuditLog(cfg.AuditLog)
	}
	if cfg.RPC != nil {
		s.SetRPC(cfg.RPC(s))
	}
	return s, nil
}

func (s *Server) newHTTPServer(cfg Config, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(cfg.ReadHeaderTimeout, 10*time.Second),
		IdleTimeout:       orDefault(cfg.IdleTimeout, 90*time.Second),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = 64 << 10
	}
	return srv
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// SetRPC installs the handler of the RPC door (connections starting 0x00).
// Prefer Config.RPC; this setter is safe while serving.
func (s *Server) SetRPC(serve func(ctx context.Context, c net.Conn)) {
	h := ConnHandler(serve)
	s.rpc.Store(&h)
}

// SetApprovals installs the approval queue (nil: requests that need an
// approval are refused, fail closed). Safe while serving.
func (s *Server) SetApprovals(q *approval.Queue) { s.approvals.Store(q) }

// Approvals returns the approval queue, or nil.
func (s *Server) Approvals() *approval.Queue { return s.approvals.Load() }

// Policy returns the policy in force.
func (s *Server) Policy() *policy.Policy { return s.policy.Load() }

// SetPolicy swaps in a new policy; requests already judged keep the old one.
func (s *Server) SetPolicy(p *policy.Policy) {
	s.policy.Store(p)
	s.dropStaleCaches()
	s.reloadMeter(p) // budgets and prices (meter.go)
}

// Vault returns the vault, or nil when sealed.
func (s *Server) Vault() *vault.Vault { return s.vault.Load() }

// Seal drops the vault: every credential use answers VAULT_LOCKED until
// airlock is restarted and unlocked again.
func (s *Server) Seal() {
	s.vault.Store(nil)
	s.metrics.VaultSealed.Set(1)
	s.log.Warn("vault sealed")
}

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// viaUpstreamProxy is the dialer's hook: the upstream proxy of the policy
// in force (egress.upstream_proxy), nil, nil when none is configured.
func (s *Server) viaUpstreamProxy() (*egress.UpstreamProxy, error) {
	p := s.Policy()
	if p == nil {
		return nil, nil
	}
	return s.ops.upstream.Parse(p.Egress.UpstreamProxy)
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

func (s *Server) allowNetworks() []netip.Prefix { return s.policy.Load().Egress.AllowNetworks }

func (s *Server) countCertLookup(hit bool) {
	if hit {
		s.metrics.CertCache.WithLabelValues("hit").Inc()
	} else {
		s.metrics.CertCache.WithLabelValues("miss").Inc()
	}
}

// Serve accepts connections on l until Shutdown. It returns nil after a
// clean shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.frontL == nil {
		s.frontL = conn.NewListener(l.Addr())
		go func() { _ = s.front.Serve(s.frontL) }()
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() || conn.IsClosed(err) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		go s.dispatch(c)
	}
}

// dispatch sniffs the first byte and hands the connection to its door.
func (s *Server) dispatch(raw net.Conn) {
	s.metrics.OpenConns.Inc()
	c := net.Conn(&conn.Tracked{Conn: &conn.WriteDeadline{Conn: raw, D: s.guard.writeTimeout}, OnClose: s.metrics.OpenConns.Dec})
	first, pc, err := sniff(c, 10*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if first == 0x00 {
		rpc := s.rpc.Load()
		if rpc == nil || *rpc == nil {
			_ = c.Close()
			return
		}
		defer pc.Close()
		(*rpc)(s.base, pc)
		return
	}
	s.frontL.Push(s.guardHeads(pc, ""))
}

// Shutdown stops accepting, then waits for in-flight requests to finish
// (or ctx to end).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.cancel()
	s.mu.Lock()
	for _, l := range s.listeners {
		_ = l.Close()
	}
	s.mu.Unlock()
	errFront := s.front.Shutdown(ctx)
	errInner := s.drainInner(ctx)
	errH2 := s.h2.Drain(ctx) // GOAWAY, then in-flight h2 streams
	s.transport.CloseIdleConnections()
	return errors.Join(errFront, errInner, errH2, s.closeMeter()) // meter.go
}

// drainInner closes idle MITM'd connections until none is busy or ctx
// ends; busy ones close after their current response.
func (s *Server) drainInner(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.inner.CloseIdle() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
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
