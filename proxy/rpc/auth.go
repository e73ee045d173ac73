package rpc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock/airlock/vault"
)

// Failed authentications allowed in a burst, and the refill interval.
const (
	authBurst        = 5
	authRefill       = 12 * time.Second
	maxConnSessions  = 16   // sessions (pending or live) one connection may hold
	maxAgentLimiters = 4096 // per-agent limiters kept; beyond, agents share one
)

// session is one authentication on a connection.
type session struct {
	agent     string
	challenge []byte // nil once answered: a challenge is single-use
	pubKey    ed25519.PublicKey
	expires   time.Time // of the challenge while pending, of the session after
	authed    bool
}

// connState is what one connection remembers. Only its serving goroutine
// touches it.
type connState struct {
	sessions map[string]*session
	limiter  *rate.Limiter // failed authentications on this connection

	source        string // the peer address limits are charged to (preauth.go)
	authenticated bool   // a challenge_response succeeded on this connection

	// track registers the connection under an authenticated agent, so
	// revoking the agent closes it (nil: the backend does not track).
	track   func(agent string) (untrack func())
	tracked map[string]func() // untrack by agent
}

// AgentTracker is implemented by a [Backend] that closes connections of
// revoked agents (*proxy.Server): stop ends the connection.
type AgentTracker interface {
	TrackAgent(agent string, stop func()) (untrack func())
}

// trackAgent registers the connection under agent once.
func (cs *connState) trackAgent(agent string) {
	if cs.track == nil || cs.tracked[agent] != nil {
		return
	}
	if cs.tracked == nil {
		cs.tracked = make(map[string]func())
	}
	cs.tracked[agent] = cs.track(agent)
}

// untrackAll drops the registrations when the connection ends.
func (cs *connState) untrackAll() {
	for _, untrack := range cs.tracked {
		untrack()
	}
}

func newConnState() *connState {
	return &connState{
		sessions: make(map[string]*session),
		limiter:  rate.NewLimiter(rate.Every(authRefill), authBurst),
	}
}

// authLimits are the per-agent failed-authentication limiters.
type authLimits struct {
	mu      sync.Mutex // guards agents and sources
	agents  map[string]*rate.Limiter
	sources map[string]*rate.Limiter // failed signatures by source address
	shared  *rate.Limiter            // unknown names and overflow
}

func newAuthLimits() *authLimits {
	return &authLimits{
		agents:  make(map[string]*rate.Limiter),
		sources: make(map[string]*rate.Limiter),
		shared:  rate.NewLimiter(rate.Every(authRefill/10), 10*authBurst),
	}
}

// forSource returns the failed-signature limiter of a source address.
func (a *authLimits) forSource(source string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.sources[source]
	if l == nil {
		if len(a.sources) >= maxAgentLimiters {
			return a.shared
		}
		l = rate.NewLimiter(rate.Every(authRefill), 4*authBurst)
		a.sources[source] = l
	}
	return l
}

// forAgent returns the limiter of a registered agent, or the shared one.
func (a *authLimits) forAgent(d *vault.Data, name string) *rate.Limiter {
	if d == nil || d.Agents[name] == nil {
		return a.shared
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.agents[name]
	if l == nil {
		if len(a.agents) >= maxAgentLimiters {
			return a.shared
		}
		l = rate.NewLimiter(rate.Every(authRefill), authBurst)
		a.agents[name] = l
	}
	return l
}

// limited returns a RATE_LIMITED error when any limiter has no token left.
func limited(now time.Time, ls ...*rate.Limiter) *Error {
	for _, l := range ls {
		if tok := l.TokensAt(now); tok < 1 {
			retry := int(math.Ceil((1 - tok) / float64(l.Limit())))
			return rateLimited("failed authentications", max(retry, 1))
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type authParams struct {
	AgentName string `json:"agent_name"`
}

// authenticate starts a challenge for any name: whether the agent exists is
// only judged at challenge_response, so names cannot be probed.
func (s *Server) authenticate(cs *connState, c *call) (any, *Error) {
	var p authParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	if p.AgentName == "" {
		return nil, invalid("agent_name is required")
	}
	c.agent = p.AgentName
	d := s.b.Snapshot()
	if d == nil {
		return nil, vaultLocked()
	}
	now := s.now()
	// Only this connection's own failures refuse a challenge: failures of
	// other clients claiming the same name (or from the same address)
	// never lock out the one that holds the key.
	if e := limited(now, cs.limiter); e != nil {
		return nil, e
	}
	cs.prune(now)
	if len(cs.sessions) >= maxConnSessions {
		return nil, rateLimited("sessions on this connection", 1)
	}
	challenge := make([]byte, 32)
	rand.Read(challenge)
	id := randomHex(16)
	cs.sessions[id] = &session{agent: p.AgentName, challenge: challenge, expires: now.Add(s.opts.ChallengeTTL)}
	return map[string]any{"session_id": id, "challenge": hex.EncodeToString(challenge)}, nil
}

type challengeParams struct {
	SessionID string `json:"session_id"`
	Signature string `json:"signature"`
}

func (s *Server) challengeResponse(cs *connState, c *call) (any, *Error) {
	var p challengeParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	now := s.now()
	sess := cs.sessions[p.SessionID]
	if sess == nil || sess.challenge == nil || !now.Before(sess.expires) {
		return nil, sessionExpired()
	}
	c.agent = sess.agent
	d := s.b.Snapshot()
	if d == nil {
		return nil, vaultLocked()
	}
	challenge := sess.challenge
	sess.challenge = nil
	sig, err := hex.DecodeString(p.Signature)
	a := d.Agents[sess.agent]
	if err != nil || a == nil || a.Disabled || len(a.PublicKey) != ed25519.PublicKeySize ||
		!ed25519.Verify(a.PublicKey, challenge, sig) {
		// A correct signature is always accepted (checked first); a wrong
		// one is charged to this connection, its source and the name.
		delete(cs.sessions, p.SessionID)
		srcLim := s.limits.forSource(cs.source)
		if e := limited(now, cs.limiter, srcLim); e != nil {
			return nil, e
		}
		cs.limiter.AllowN(now, 1)
		srcLim.AllowN(now, 1)
		s.limits.forAgent(d, sess.agent).AllowN(now, 1)
		return nil, authFailed()
	}
	cs.authenticated = true
	sess.authed, sess.pubKey, sess.expires = true, a.PublicKey, now.Add(s.opts.SessionTTL)
	cs.trackAgent(sess.agent)
	return map[string]any{"authenticated": true}, nil
}

// prune drops expired sessions and challenges.
func (cs *connState) prune(now time.Time) {
	for id, sess := range cs.sessions {
		if !now.Before(sess.expires) {
			delete(cs.sessions, id)
		}
	}
}

// sessionAgent checks the session id of an authenticated call against the
// connection and the current agents registry, and returns the agent name.
// A removed, disabled or re-keyed agent loses its sessions.
func (s *Server) sessionAgent(cs *connState, d *vault.Data, id string) (string, *Error) {
	sess := cs.sessions[id]
	if sess == nil || !sess.authed || !s.now().Before(sess.expires) {
		delete(cs.sessions, id)
		return "", sessionExpired()
	}
	a := d.Agents[sess.agent]
	if a == nil || a.Disabled || !a.PublicKey.Equal(sess.pubKey) {
		delete(cs.sessions, id)
		return "", sessionExpired()
	}
	return sess.agent, nil
}

// connAgent is the agent of any live authenticated session on cs.
func (s *Server) connAgents(cs *connState) map[string]bool {
	now := s.now()
	out := map[string]bool{}
	for _, sess := range cs.sessions {
		if sess.authed && now.Before(sess.expires) {
			out[sess.agent] = true
		}
	}
	return out
}
