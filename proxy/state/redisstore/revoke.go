package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Revocation event kinds.
const (
	AgentRemoved   = "agent_removed"
	AgentRotated   = "agent_rotated"
	SessionRevoked = "session_revoked"
)

// Revocation tells every replica to cut an agent's connections (or one
// session's).
type Revocation struct {
	Kind    string    `json:"kind"` // AgentRemoved, AgentRotated or SessionRevoked
	Agent   string    `json:"agent"`
	Session string    `json:"session,omitempty"`
	Replica string    `json:"replica"` // the publisher
	At      time.Time `json:"at"`
}

// PublishRevocation sends ev to every replica's subscribers (this one's
// too). Redis unreachable: ErrUnavailable; the event is not queued.
func (s *Store) PublishRevocation(ctx context.Context, ev Revocation) error {
	if ev.Replica == "" {
		ev.Replica = s.opts.ReplicaID
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode revocation: %w", err)
	}
	return s.fail("revocation_publish", s.rdb.Publish(ctx, s.chanRevocations(), b).Err())
}

// Revocations returns a channel of every revocation published by any
// replica until ctx ends (then it is closed). Events arrive in order;
// a consumer slower than 256 pending events loses the excess (counted
// under op revocation_dropped), as are events sent while Redis was down:
// after an outage, reload the vault to catch up.
func (s *Store) Revocations(ctx context.Context) <-chan Revocation {
	raw, stop := s.subs.listen(s.chanRevocations())
	out := make(chan Revocation, 16)
	go func() {
		defer close(out)
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-raw:
				var ev Revocation
				if err := json.Unmarshal([]byte(p), &ev); err != nil {
					_ = s.fail("revocation_decode", err)
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
