package state

import (
	"context"
	"errors"
	"time"
)

// Fleet mode: a Store shared by several replicas (package redisstore's
// adapter) also implements [Leaser] for OAuth2 tokens and [Fleet] for
// membership and health. Consumers check with a type assertion; the
// in-memory Store implements neither.

// ErrUnavailable wraps every error of a shared store that could not be
// reached; callers apply their concern's failure mode.
var ErrUnavailable = errors.New("shared state unavailable")

// LeasedToken is an OAuth2 token as the fleet shares it: the access token,
// the newest refresh token (rotating providers) and the access token's
// expiry.
type LeasedToken struct {
	Access  string
	Refresh string
	Expiry  time.Time
}

// String hides the tokens.
func (LeasedToken) String() string { return "oauth2 token [REDACTED]" }

// GoString hides the tokens.
func (t LeasedToken) GoString() string { return t.String() }

// RefreshFunc fetches a new token given the fleet's current one (zero when
// the fleet has none: use the vault's refresh token). An empty returned
// Refresh keeps current's.
type RefreshFunc func(ctx context.Context, current LeasedToken) (LeasedToken, error)

// Leaser hands out OAuth2 tokens shared by a fleet: one valid for at least
// minValid, calling refresh on exactly one replica (the lease holder) when
// the fleet's token is older. Errors wrap ErrUnavailable when the shared
// store could not be reached.
type Leaser interface {
	Lease(ctx context.Context, key string, minValid time.Duration, refresh RefreshFunc) (LeasedToken, error)
}

// Member is one replica of the fleet as /v1/status lists it.
type Member struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr,omitempty"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
}

// Fleet is the membership and health side of a shared store.
type Fleet interface {
	// ReplicaID names this replica.
	ReplicaID() string
	// Members lists the live replicas.
	Members(ctx context.Context) ([]Member, error)
	// Healthy pings the shared store; detail is its health document
	// (address without password, last error, fail modes).
	Healthy(ctx context.Context) (ok bool, detail any)
}
