package redisstore

import (
	"context"
	"maps"
	"time"
)

// Health is the state store's part of /readyz detail and /v1/status.
type Health struct {
	OK          bool              `json:"ok"`
	Addr        string            `json:"addr"` // without password
	Replica     string            `json:"replica"`
	Latency     time.Duration     `json:"latency_ns"`
	LastError   string            `json:"last_error,omitempty"`
	LastErrorAt time.Time         `json:"last_error_at,omitzero"`
	LastOKAt    time.Time         `json:"last_ok_at,omitzero"`
	Errors      map[string]uint64 `json:"errors,omitempty"` // by op, since start
	Modes       map[string]string `json:"modes"`            // concern → fail mode
}

// Health pings Redis (within ctx) and reports it with the error history.
// OK false means the concerns are running in their failure modes.
func (s *Store) Health(ctx context.Context) Health {
	start := time.Now()
	err := s.Ping(ctx)
	h := Health{OK: err == nil, Addr: s.addr, Replica: s.opts.ReplicaID, Latency: time.Since(start),
		Modes: map[string]string{
			"ratelimit": s.opts.RateLimitMode.String(), "budgets": s.opts.BudgetMode.String(),
			"approvals": FailClosed.String(), "oauth2": "local_refresh_if_not_rotating",
		}}
	s.mu.Lock()
	h.LastError, h.LastErrorAt, h.LastOKAt = s.lastErr, s.lastErrAt, s.lastOKAt
	h.Errors = maps.Clone(s.errCount)
	s.mu.Unlock()
	return h
}
