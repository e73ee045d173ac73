package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock/airlock/proxy/state"
)

// Adapter is a Store seen through package state's interfaces: the
// pipeline's [state.Store] (rate limits, token cache, budgets) plus
// [state.Leaser] (OAuth2, one refresh fleet-wide) and [state.Fleet]
// (membership, health). Errors caused by Redis wrap both ErrUnavailable
// and state.ErrUnavailable.
type Adapter struct {
	s      *Store
	leases leases // rate-limit tokens leased in chunks (lease.go)
}

// State returns s as a state.Store (see [Adapter]).
func (s *Store) State() *Adapter { return &Adapter{s: s} }

var (
	_ state.Store  = (*Adapter)(nil)
	_ state.Leaser = (*Adapter)(nil)
	_ state.Fleet  = (*Adapter)(nil)
)

// unavailable adds state.ErrUnavailable to a Redis failure.
func unavailable(err error) error {
	if err != nil && errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %w", state.ErrUnavailable, err)
	}
	return err
}

// Allow implements state.Limiter with the fleet's GCRA bucket. Redis
// unreachable: FailOpen admits (the store logged and counted it) and
// returns no error, FailClosed refuses with the error.
func (a *Adapter) Allow(ctx context.Context, key string, limit rate.Limit, burst int) (bool, time.Duration, error) {
	if limit == rate.Inf {
		return true, 0, nil
	}
	if limit <= 0 || burst <= 0 {
		return false, time.Duration(math.MaxInt64), nil // state.Memory: never
	}
	var ok bool
	var wait time.Duration
	var err error
	if chunk := leaseChunk(burst); chunk > 1 && !a.s.opts.NoBatch {
		ok, wait, err = a.allowLeased(ctx, key, float64(limit), burst, chunk)
	} else {
		ok, wait, err = a.s.Allow(ctx, key, float64(limit), burst)
	}
	if err != nil && ok {
		return true, 0, nil // fail open
	}
	return ok, wait, unavailable(err)
}

// Token implements state.Tokens from the sealed fleet record.
func (a *Adapter) Token(ctx context.Context, key string) (state.Token, bool, error) {
	t, err := a.s.CachedToken(ctx, key)
	if err != nil {
		return state.Token{}, false, unavailable(err)
	}
	if t.AccessToken == "" {
		return state.Token{}, false, nil
	}
	return state.Token{Value: t.AccessToken, Expiry: t.Expiry}, true, nil
}

// PutToken implements state.Tokens, keeping the stored refresh token.
func (a *Adapter) PutToken(ctx context.Context, key string, t state.Token) error {
	cur, err := a.s.CachedToken(ctx, key)
	if err != nil && !errors.Is(err, ErrBadRecord) {
		return unavailable(err)
	}
	_, err = a.s.StoreToken(ctx, key, Token{AccessToken: t.Value, RefreshToken: cur.RefreshToken, Expiry: t.Expiry})
	return unavailable(err)
}

// DropToken implements state.Tokens: the access token goes if it is still
// value; the refresh token stays.
func (a *Adapter) DropToken(ctx context.Context, key, value string) error {
	cur, err := a.s.CachedToken(ctx, key)
	if err != nil || cur.AccessToken != value {
		return unavailable(err)
	}
	_, err = a.s.StoreToken(ctx, key, Token{RefreshToken: cur.RefreshToken})
	return unavailable(err)
}

// LockRefresh implements state.Tokens with the fleet lease of key.
func (a *Adapter) LockRefresh(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	owner := a.s.opts.ReplicaID + "/" + randomID()
	got, err := a.s.rdb.SetNX(ctx, a.s.leaseKey(key), owner, ttl).Result()
	if err = a.s.fail("oauth2_lease", err); err != nil || !got {
		return func() {}, false, unavailable(err)
	}
	return func() {
		_ = a.s.fail("oauth2_unlock", unlockScript.Run(context.Background(), a.s.rdb, []string{a.s.leaseKey(key)}, owner).Err())
	}, true, nil
}

// Lease implements state.Leaser with [Store.Token].
func (a *Adapter) Lease(ctx context.Context, key string, minValid time.Duration, refresh state.RefreshFunc) (state.LeasedToken, error) {
	t, err := a.s.Token(ctx, key, minValid, func(ctx context.Context, cur Token) (Token, error) {
		n, err := refresh(ctx, state.LeasedToken{Access: cur.AccessToken, Refresh: cur.RefreshToken, Expiry: cur.Expiry})
		return Token{AccessToken: n.Access, RefreshToken: n.Refresh, Expiry: n.Expiry}, err
	})
	if err != nil {
		return state.LeasedToken{}, unavailable(err)
	}
	return state.LeasedToken{Access: t.AccessToken, Refresh: t.RefreshToken, Expiry: t.Expiry}, nil
}

// budgetWindow is the one window of state.Budgets' keys (which carry
// their own period): counters that last until the key changes.
var budgetWindow = Window{ID: "all", End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}

// Reserve implements state.Budgets (ttl: Options.ReservationTTL).
func (a *Adapter) Reserve(ctx context.Context, key string, amount, limit int64, _ time.Duration) (string, error) {
	r, err := a.s.Reserve(ctx, key, budgetWindow, amount, limit)
	switch {
	case errors.Is(err, ErrExceeded):
		return "", fmt.Errorf("%w: %w", state.ErrBudgetExceeded, err)
	case err != nil && r.Local:
		return "", nil // BudgetMode fail_open: admitted, not recorded
	case err != nil:
		return "", unavailable(err)
	}
	return r.ID, nil
}

// Commit implements state.Budgets.
func (a *Adapter) Commit(ctx context.Context, key, id string, amount int64) error {
	if id == "" {
		return nil // admitted while Redis was away
	}
	_, err := a.s.Commit(ctx, Reservation{Key: key, Window: budgetWindow, ID: id, Granted: true}, amount)
	return unavailable(err)
}

// Release implements state.Budgets.
func (a *Adapter) Release(ctx context.Context, key, id string) error {
	if id == "" {
		return nil
	}
	_, err := a.s.Release(ctx, Reservation{Key: key, Window: budgetWindow, ID: id, Granted: true})
	return unavailable(err)
}

// Spent implements state.Budgets.
func (a *Adapter) Spent(ctx context.Context, key string) (int64, int64, error) {
	used, reserved, err := a.s.Used(ctx, key, budgetWindow)
	return used, reserved, unavailable(err)
}

// ReplicaID implements state.Fleet.
func (a *Adapter) ReplicaID() string { return a.s.ReplicaID() }

// Members implements state.Fleet.
func (a *Adapter) Members(ctx context.Context) ([]state.Member, error) {
	rs, err := a.s.Replicas(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]state.Member, len(rs))
	for i, r := range rs {
		out[i] = state.Member{ID: r.ID, Addr: r.Addr, Version: r.Version, Started: r.Started, Seen: r.Seen}
	}
	return out, nil
}

// Healthy implements state.Fleet.
func (a *Adapter) Healthy(ctx context.Context) (bool, any) {
	h := a.s.Health(ctx)
	return h.OK, h
}

var _ state.Revocations = (*Adapter)(nil)

// revocationKinds maps state's revocation reasons to the stream's kinds.
var revocationKinds = map[string]string{"removed": AgentRemoved, "rekeyed": AgentRotated}

// PublishRevocation implements state.Revocations on the fleet's stream:
// every replica's subscriber hears it within a blocking read.
func (a *Adapter) PublishRevocation(ctx context.Context, r state.Revocation) error {
	kind := revocationKinds[r.Reason]
	if kind == "" {
		kind = "agent_" + r.Reason
	}
	return unavailable(a.s.PublishRevocation(ctx, Revocation{Kind: kind, Agent: r.Agent, Replica: r.Origin, At: r.At}))
}

// SubscribeRevocations implements state.Revocations: the fleet's events
// from now on (a reader that reconnects catches up), until ctx ends.
func (a *Adapter) SubscribeRevocations(ctx context.Context) (<-chan state.Revocation, error) {
	in := a.s.Revocations(ctx)
	out := make(chan state.Revocation, 256)
	go func() {
		defer close(out)
		for ev := range in {
			reason := strings.TrimPrefix(ev.Kind, "agent_")
			for k, v := range revocationKinds {
				if v == ev.Kind {
					reason = k
				}
			}
			select {
			case out <- state.Revocation{Agent: ev.Agent, Reason: reason, Origin: ev.Replica, At: ev.At}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
