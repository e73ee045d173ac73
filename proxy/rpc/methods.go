package rpc

import (
	"context"
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/vault"
)

// allowed returns the first grant letting agent perform any of actions on
// path. A nil policy grants nothing.
func (s *Server) allowed(agent, path string, actions ...string) (*policy.Grant, bool) {
	p := s.b.Policy()
	if p == nil {
		return nil, false
	}
	for _, a := range actions {
		if g, ok := p.Allowed(agent, path, a); ok {
			return g, true
		}
	}
	return nil, false
}

// credential asks the pipeline (Backend.Judge) for operation op on path:
// the grant for any of actions (checked first, so that an agent without one
// learns nothing about which paths exist), the rule binding the credential
// (rate limit), then a live credential from the source. The decision is
// kept on c for the audit line.
func (s *Server) credential(ctx context.Context, c *call, r door.Request, actions ...string) (*vault.Credential, *policy.Grant, *Error) {
	c.credential = r.Credential
	if r.Credential == "" {
		return nil, nil, invalid("path is required")
	}
	r.Door, r.Agent, r.Actions = door.RPC, c.agent, actions
	dec, err := s.b.Judge(ctx, r)
	if err != nil {
		return nil, nil, backendError(err, func(m string) string { return m })
	}
	c.dec = dec
	return dec.Credential, dec.Grant, nil
}

// listHandler returns metadata of the credentials the agent may list.
func listHandler(s *Server, _ context.Context, d *vault.Data, c *call) (any, *Error) {
	paths := make([]string, 0, len(d.Credentials))
	for path := range d.Credentials {
		if _, ok := s.allowed(c.agent, path, "list"); ok {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	out := make([]map[string]any, 0, len(paths))
	for _, path := range paths {
		out = append(out, credentialInfo(d.Credentials[path]))
	}
	return map[string]any{"credentials": out}, nil
}

// credentialInfo is the metadata of cred that list shows: never the value,
// never metadata other than tags.
func credentialInfo(cred *vault.Credential) map[string]any {
	kind := cred.Kind
	if kind == "" {
		kind = vault.KindStatic
	}
	tags := []string{}
	for t := range strings.SplitSeq(cred.Metadata["tags"], ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return map[string]any{
		"path":       cred.Path,
		"type":       kind,
		"created_at": timeOrNil(cred.CreatedAt),
		"updated_at": timeOrNil(cred.UpdatedAt),
		"expires_at": timeOrNil(cred.ExpiresAt),
		"tags":       tags,
	}
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

type retrieveParams struct {
	Path string   `json:"path"`
	TTL  *float64 `json:"ttl"`
}

// retrieveHandler hands out the value under a lease: ttl is the requested
// one (default the grant's cap) capped by the grant's MaxTTL and by the
// credential's own expiry.
func retrieveHandler(s *Server, ctx context.Context, _ *vault.Data, c *call) (any, *Error) {
	var p retrieveParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	c.operation = door.OpRetrieve
	cred, g, e := s.credential(ctx, c, door.Request{Operation: door.OpRetrieve, Credential: p.Path}, "retrieve")
	if e != nil {
		return nil, e
	}
	maxTTL := g.MaxTTL
	if maxTTL <= 0 {
		maxTTL = defaultMaxTTL
	}
	ttl := maxTTL
	if p.TTL != nil {
		if *p.TTL < 1 || math.IsNaN(*p.TTL) {
			return nil, invalid("ttl must be a positive number of seconds")
		}
		if req := *p.TTL; req < maxTTL.Seconds() {
			ttl = time.Duration(req) * time.Second
		}
	}
	now := s.now()
	if !cred.ExpiresAt.IsZero() && cred.ExpiresAt.Sub(now) < ttl {
		ttl = cred.ExpiresAt.Sub(now).Truncate(time.Second)
	}
	id := randomHex(16)
	expires := now.Add(ttl)
	if !s.leases.add(id, &lease{agent: c.agent, path: p.Path, expires: expires}, now) {
		return nil, rateLimited("active leases", 1)
	}
	c.sensitive = true
	return map[string]any{
		"value":      hex.EncodeToString(cred.Value.Bytes()),
		"lease_id":   id,
		"ttl":        int(ttl / time.Second),
		"expires_at": expires.UTC().Format(time.RFC3339),
	}, nil
}

type releaseParams struct {
	LeaseID string `json:"lease_id"`
}

// releaseLease ends a lease of an agent authenticated on this connection.
// Releasing a released lease is fine; an unknown or expired one is
// LEASE_EXPIRED.
func (s *Server) releaseLease(cs *connState, c *call) (any, *Error) {
	var p releaseParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	if s.b.Snapshot() == nil {
		return nil, vaultLocked()
	}
	agents := s.connAgents(cs)
	if len(agents) == 0 {
		return nil, sessionExpired()
	}
	for a := range agents {
		c.agent = a
		break
	}
	l, ok := s.leases.release(p.LeaseID, agents, s.now())
	if !ok {
		return nil, newError(CodeLeaseExpired, "unknown or expired lease", "retrieve the credential again")
	}
	c.agent, c.credential = l.agent, l.path
	return struct{}{}, nil
}

// defaultMaxTTL caps leases of a grant without max_ttl (the policy package
// normally fills in the same 300s).
const defaultMaxTTL = 300 * time.Second
