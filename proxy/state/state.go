// Package state holds what airlock keeps between requests and must later
// share between replicas: rate-limit buckets, OAuth2 access tokens and the
// lock that lets one replica refresh them, budget counters and their
// reservations, approval decisions and revocation events.
//
// [Store] is the seam; [Memory] is the local implementation (one process),
// with [Memory.Persist] for the pieces that must survive a restart (budget
// counters). A fleet implementation (Redis, `serve --state redis://`) will
// implement the same interfaces.
//
// # Interfaces
//
// Consumers depend on the narrow interface they need ([Limiter], [Tokens],
// [Budgets]); [Store] is all of them. Approvals and revocation events
// ([Approvals], [Events]) are declared here so their owners code against
// one shape; Memory does not implement them yet.
package state

import (
	"context"
	"errors"
	"time"

	"golang.org/x/time/rate"
)

// Store is everything the pipeline keeps.
type Store interface {
	Limiter
	Tokens
	Budgets
}

// Limiter is a set of token buckets by key.
type Limiter interface {
	// Allow takes one token from the bucket of key, created with (or
	// updated in place to) limit tokens per second and burst; a changed
	// limit never hands out a fresh burst. When none is left it returns
	// false and how long until one will be (math.MaxInt64 when never).
	Allow(ctx context.Context, key string, limit rate.Limit, burst int) (ok bool, retryAfter time.Duration, err error)
}

// Token is a cached OAuth2 access token.
type Token struct {
	Value  string
	Expiry time.Time
}

// Tokens caches OAuth2 access tokens by key (credential path × settings)
// and serialises their refresh.
type Tokens interface {
	// Token returns the cached token of key; ok false when none.
	Token(ctx context.Context, key string) (t Token, ok bool, err error)
	// PutToken stores t as the token of key.
	PutToken(ctx context.Context, key string, t Token) error
	// DropToken forgets key's token if it is still value (the upstream
	// refused it); a token stored since is kept.
	DropToken(ctx context.Context, key, value string) error
	// LockRefresh takes the refresh lock of key for at most ttl. ok false:
	// another holder refreshes; wait for its token. unlock releases it.
	LockRefresh(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error)
}

// Budgets counts spending (tokens or micro-USD) per budget window and
// holds reservations for requests in flight.
type Budgets interface {
	// Reserve books amount against limit in window key; it fails with
	// ErrBudgetExceeded (and books nothing) when spent + reserved + amount
	// would pass limit. The returned id names the reservation.
	Reserve(ctx context.Context, key string, amount, limit int64, ttl time.Duration) (id string, err error)
	// Commit turns reservation id into spending of amount (the real cost,
	// which may differ from the reservation).
	Commit(ctx context.Context, key, id string, amount int64) error
	// Release drops reservation id without spending.
	Release(ctx context.Context, key, id string) error
	// Spent is the committed spending and open reservations of key.
	Spent(ctx context.Context, key string) (spent, reserved int64, err error)
}

// ErrBudgetExceeded is returned by Reserve when the budget cannot cover
// the reservation.
var ErrBudgetExceeded = errors.New("budget exceeded")

// Approval is a person's decision on a held request.
type Approval struct {
	Allow   bool
	Until   time.Time // remembered until then; zero: this request only
	By      string    // who decided (console user, webhook)
	Decided time.Time
}

// Approvals is the queue of held requests and the remembered decisions.
// Declared for the approval flow; no implementation here yet.
type Approvals interface {
	// Decision returns the remembered decision for key, if any.
	Decision(ctx context.Context, key string) (a Approval, ok bool, err error)
	// Await queues request key (described by summary, names only) and
	// waits for a decision until ctx ends.
	Await(ctx context.Context, key, summary string) (Approval, error)
	// Decide records a decision for key and wakes its waiters.
	Decide(ctx context.Context, key string, a Approval) error
}

// Events carries revocation events (a credential rotated, an agent
// removed) to every replica. Declared; no implementation here yet.
type Events interface {
	Publish(ctx context.Context, topic, msg string) error
	Subscribe(ctx context.Context, topic string) (<-chan string, error)
}
