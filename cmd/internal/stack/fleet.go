package stack

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/state/redisstore"
	"github.com/airlock/airlock/vault"
)

// Heartbeat is how often a fleet replica announces itself (listed for
// three intervals after its last beat).
const Heartbeat = 5 * time.Second

// FleetOptions put the stack into fleet mode: state shared through Redis.
type FleetOptions struct {
	URL       string // redis://, rediss://, redis+sentinel://, redis+cluster:// (redisstore.ParseURL)
	ReplicaID string // this replica's name (default: a random id)
	// RateLimitMode and BudgetMode: what those concerns do while Redis is
	// unreachable (zero: fail open and fail closed).
	RateLimitMode, BudgetMode redisstore.Mode
}

// openFleet connects the shared state and points cfg at it: rate limits,
// OAuth2 tokens and budgets then live in Redis, its error counter in the
// server's registry.
func openFleet(ctx context.Context, fo *FleetOptions, v *vault.Vault, log *zap.Logger, cfg *proxy.Config) (*redisstore.Store, error) {
	base, err := v.DeriveKey("redis state")
	if err != nil {
		return nil, err
	}
	key, err := redisstore.TokenKeyFrom(base)
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = proxy.NewMetrics()
	}
	slog := log.Named("state")
	redisstore.LibraryLogsTo(slog)
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rs, err := redisstore.Open(octx, fo.URL, redisstore.Options{ReplicaID: fo.ReplicaID, TokenKey: key,
		RateLimitMode: fo.RateLimitMode, BudgetMode: fo.BudgetMode, Registerer: cfg.Metrics.Registry, Log: slog})
	if err != nil {
		return nil, fmt.Errorf("fleet state: %w", err)
	}
	cfg.State = rs.State()
	log.Info("fleet state open", zap.String("replica", rs.ReplicaID()), zap.String("state", rs.Health(octx).Addr))
	return rs, nil
}

// JoinFleet announces this replica (proxy listener addr, version) every
// Heartbeat until ctx ends, then leaves the fleet. A no-op outside fleet
// mode. It returns at once.
func (st *Stack) JoinFleet(ctx context.Context, addr, version string) {
	if st == nil || st.Fleet == nil {
		return
	}
	r := redisstore.Replica{ID: st.Fleet.ReplicaID(), Addr: addr, Version: version, Started: time.Now().UTC()}
	st.fleetDone = make(chan struct{})
	go func() {
		defer close(st.fleetDone)
		st.Fleet.Heartbeat(ctx, r, Heartbeat)
	}()
}

// closeFleet ends fleet mode (part of Close).
func (st *Stack) closeFleet() {
	if st.Fleet == nil {
		return
	}
	if st.fleetDone != nil {
		<-st.fleetDone
	}
	_ = st.Fleet.Close()
}

// ApprovalStore is the fleet's approval queue (pending entries, decisions
// and remembered approvals in Redis, shared by every replica); nil outside
// fleet mode, where StartApprovals keeps approvals.json.
func (st *Stack) ApprovalStore() approval.Store {
	if st == nil || st.Fleet == nil {
		return nil
	}
	return st.Fleet.Approvals()
}
