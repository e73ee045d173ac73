package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/state"
	"github.com/airlock/airlock/vault"
)

// Agents: who is asking (proxy authentication, with `airlock run`'s run
// tokens), how many tunnels each may hold open (the per-agent connection
// cap), and when an agent stops being one (revocation, which closes them).

// Revocation: when a vault reload removes, disables or re-keys an agent,
// or a policy reload leaves it without any rule or grant, every connection
// it holds open through airlock is closed at once — MITM'd tunnels (and
// the WebSocket splices inside them), spliced tunnels, plain-proxy
// requests in flight and RPC sessions. The event goes through the state
// store ([state.Revocations]) so a fleet store can tell every replica; the
// replica that noticed it also closes its own connections directly.

// Revocation reasons (the reason label of airlock_revocations_total).
const (
	RevokeRemoved  = "removed"
	RevokeDisabled = "disabled"
	RevokeRekeyed  = "rekeyed"
	RevokeNoRule   = "no_rule"
)

// agentConns is the registry of open connections by agent.
type agentConns struct {
	mu   sync.Mutex // guards next and by
	next uint64
	by   map[string]map[uint64]func()

	once   sync.Once
	origin string
	events *prometheus.CounterVec // airlock_revocations_total{reason}
	closed prometheus.Counter     // airlock_revoked_connections_total
}

// TrackAgent registers stop as the way to end one open connection of
// agent; stop runs (once, from another goroutine) when agent is revoked.
// The caller calls untrack when the connection ends on its own. The RPC
// door finds this method on its backend.
func (s *Server) TrackAgent(agent string, stop func()) (untrack func()) {
	s.revocationsInit()
	r := &s.revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = make(map[string]map[uint64]func())
	}
	r.next++
	id := r.next
	if r.by[agent] == nil {
		r.by[agent] = make(map[uint64]func())
	}
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	r.by[agent][id] = stopOnce
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if m := r.by[agent]; m != nil {
			delete(m, id)
			if len(m) == 0 {
				delete(r.by, agent)
			}
		}
	}
}

// closeAgent ends every tracked connection of agent and returns how many.
func (s *Server) closeAgent(agent string) int {
	r := &s.revoked
	r.mu.Lock()
	stops := r.by[agent]
	delete(r.by, agent)
	r.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return len(stops)
}

// revocationsInit registers the metrics and, when the state store carries
// revocation events, subscribes to them (events from other replicas).
func (s *Server) revocationsInit() {
	r := &s.revoked
	r.once.Do(func() {
		r.origin = randomOrigin()
		r.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_revocations_total",
			Help: "Agents revoked (removed, disabled, re-keyed, left without a rule) by reason."}, []string{"reason"})
		r.closed = prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_revoked_connections_total",
			Help: "Open connections closed because their agent was revoked."})
		if reg := s.metrics.Registry; reg != nil {
			_ = reg.Register(r.events)
			_ = reg.Register(r.closed)
		}
		if rs, ok := s.state.(state.Revocations); ok {
			if ch, err := rs.SubscribeRevocations(s.base); err == nil {
				go s.hearRevocations(ch)
			}
		}
	})
}

// hearRevocations closes the connections of agents revoked elsewhere.
func (s *Server) hearRevocations(ch <-chan state.Revocation) {
	for ev := range ch {
		if ev.Origin == s.revoked.origin {
			continue // closed when it was published
		}
		if n := s.closeAgent(ev.Agent); n > 0 {
			s.revoked.closed.Add(float64(n))
			s.log.Warn("agent revoked by another replica; its connections are closed", fieldAgent(ev.Agent),
				zap.String("reason", ev.Reason), zap.Int("connections", n))
		}
	}
}

// revoke closes agent's connections here, logs and counts it, and tells
// the other replicas through the state store.
func (s *Server) revoke(agent, reason string) {
	s.revocationsInit()
	n := s.closeAgent(agent)
	s.revoked.events.WithLabelValues(reason).Inc()
	s.revoked.closed.Add(float64(n))
	s.log.Warn("agent revoked; its open connections are closed", fieldAgent(agent),
		zap.String("reason", reason), zap.Int("connections", n))
	if rs, ok := s.state.(state.Revocations); ok {
		ctx, cancel := context.WithTimeout(s.base, 2*time.Second)
		defer cancel()
		if err := rs.PublishRevocation(ctx, state.Revocation{Agent: agent, Reason: reason, Origin: s.revoked.origin, At: time.Now()}); err != nil {
			s.log.Error("revocation not published to the state store", fieldAgent(agent), fieldErr(err))
		}
	}
}

// revokeChangedAgents revokes every agent of old that next removes,
// disables or re-keys.
func (s *Server) revokeChangedAgents(old, next *vault.Data) {
	gone := revokedAgents(old, next)
	for _, name := range sortedKeys(gone) {
		s.revoke(name, gone[name])
	}
}

// revokedAgents maps each agent old knows that next no longer accepts as
// it was to the reason.
func revokedAgents(old, next *vault.Data) map[string]string {
	out := map[string]string{}
	if old == nil {
		return out
	}
	for name, a := range old.Agents {
		if a == nil || a.Disabled {
			continue
		}
		var b *vault.Agent
		if next != nil {
			b = next.Agents[name]
		}
		switch {
		case b == nil:
			out[name] = RevokeRemoved
		case b.Disabled:
			out[name] = RevokeDisabled
		case !bytes.Equal(a.TokenHash, b.TokenHash) || !a.PublicKey.Equal(b.PublicKey):
			out[name] = RevokeRekeyed
		}
	}
	return out
}

// revokeRuleless revokes the agents that had a rule or grant in old and
// have none in next (their tunnels would be refused request by request;
// this also ends what is in flight).
func (s *Server) revokeRuleless(old, next *policy.Policy, d *vault.Data) {
	if old == nil || next == nil || d == nil {
		return
	}
	names := make([]string, 0, len(d.Agents))
	for name := range d.Agents {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if hasAccess(old, name) && !hasAccess(next, name) {
			s.revoke(name, RevokeNoRule)
		}
	}
}

// hasAccess reports whether any rule that is not a deny, or any grant,
// covers agent.
func hasAccess(p *policy.Policy, agent string) bool {
	for _, r := range p.Rules {
		if r.Action != policy.ActionDeny && r.AppliesTo(agent) {
			return true
		}
	}
	for _, g := range p.Grants {
		if len(g.Agents) == 0 {
			return true
		}
		for _, a := range g.Agents {
			if a == agent {
				return true
			}
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// randomOrigin names this process in the revocation events it publishes.
func randomOrigin() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// trackPlain ties a plain-proxy request to the agent it names, so that
// revoking the agent cancels it in flight (the next request on the
// keep-alive connection is judged, and refused, on its own).
func (s *Server) trackPlain(r *http.Request) (*http.Request, func()) {
	name, _, ok := parseProxyAuth(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return r, func() {}
	}
	ctx, cancel := context.WithCancel(r.Context())
	untrack := s.TrackAgent(name, cancel)
	return r.WithContext(ctx), func() { untrack(); cancel() }
}

// Why a proxy authentication failed, for the server log (never the
// token): the 407 the agent sees stays "unknown agent or wrong token".
const (
	authNoCredentials = "no credentials"
	authUnknownAgent  = "unknown agent"
	authBadToken      = "bad token"
	authDisabled      = "disabled"
	authSealed        = "vault sealed"
)

// authFailReason says why r's Proxy-Authorization was refused.
func (s *Server) authFailReason(r *http.Request) string {
	name, _, ok := parseProxyAuth(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return authNoCredentials
	}
	v := s.Vault()
	if v == nil {
		return authSealed
	}
	a := v.Snapshot().Agents[name]
	switch {
	case a == nil:
		return authUnknownAgent
	case a.Disabled:
		return authDisabled
	}
	return authBadToken
}

// authToken checks an agent's proxy token against the vault on disk: when
// the file changed since last looked at (one stat per CONNECT or plain
// request), it is reloaded first, so an agent the CLI added, removed or
// re-keyed a moment ago is judged by its new entry, not after the poll.
func (s *Server) authToken(v *vault.Vault, name, token string) bool {
	ok := tokenOK(v.Snapshot(), name, token)
	if !s.vaultFileChanged(v) {
		return ok
	}
	if changed, err := s.ReloadVault(); err != nil || !changed {
		return ok
	}
	nv := s.Vault()
	if nv == nil {
		return false
	}
	return tokenOK(nv.Snapshot(), name, token)
}

// tokenOK reports whether token authenticates agent name: its own token
// or a live run token of `airlock run` (vault.Data.AuthenticateRunToken).
func tokenOK(d *vault.Data, name, token string) bool {
	_, ok := d.AuthenticateToken(name, token)
	return ok || d.AuthenticateRunToken(name, token)
}

// vaultFileChanged reports whether the vault file's size or mtime differs
// from the last time a miss looked (one stat; no read, no decryption).
func (s *Server) vaultFileChanged(v *vault.Vault) bool {
	st := stampOf(v.Path())
	if prev := s.ops.vaultSeen.Swap(&st); prev != nil && prev.same(st) {
		return false
	}
	return st.ok
}

// AuthenticateAgent reports whether token is agent's proxy token or one of
// its live run tokens (the hand-off door's check; the proxy port uses the
// same through Proxy-Authorization).
func (s *Server) AuthenticateAgent(agent, token string) bool {
	v := s.Vault()
	if v == nil {
		return false
	}
	return s.authToken(v, agent, token) // re-reads a vault changed on disk
}

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
		return s.TrackAgent(ev.agent, func() { _ = c.Close() }) // closed on revocation
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
		untrack := s.TrackAgent(ev.agent, func() { _ = c.Close() }) // closed on revocation
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

// NetConn and Buffered let h1's idle wait look through (it parks the
// connection without a goroutine only when every layer is known empty).
func (c *releaseConn) NetConn() net.Conn { return c.Conn }
func (c *releaseConn) Buffered() int     { return 0 }
