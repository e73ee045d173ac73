package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocation event kinds.
const (
	AgentRemoved   = "agent_removed"
	AgentRotated   = "agent_rotated"
	SessionRevoked = "session_revoked"
)

// Revocation stream tuning: events kept (approximately), blocking read
// length, wait after a failed read.
const (
	revocationKeep  = 10_000
	revocationBlock = time.Second
	revocationRetry = 100 * time.Millisecond
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

func (s *Store) revocationKey() string { return s.key("revocations") }

// PublishRevocation appends ev to the fleet's revocation stream (XADD,
// the last ~10,000 kept): every replica's reader gets it at once, and a
// reader whose connection dropped gets it when it reconnects. Redis
// unreachable: ErrUnavailable; the event is not queued.
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
	return s.fail("revocation_publish", s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: s.revocationKey(), MaxLen: revocationKeep, Approx: true, Values: []any{"ev", b},
	}).Err())
}

// Revocations returns a channel of every revocation published by any
// replica (this one included) from now until ctx ends or the Store is
// closed, in order; then it is closed. One blocking reader per call follows the stream from its
// last seen entry, so a dropped connection or a Redis restart with its
// data loses nothing; a Redis that lost its data (no persistence) loses
// what it held. A consumer must keep up: the channel holds 256 events.
func (s *Store) Revocations(ctx context.Context) <-chan Revocation {
	out := make(chan Revocation, 256)
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(out)
		last := s.revocationStart(ctx)
		once.Do(func() { close(ready) })
		for ctx.Err() == nil {
			streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{
				Streams: []string{s.revocationKey(), last}, Block: revocationBlock, Count: 100,
			}).Result()
			if errors.Is(err, redis.Nil) {
				s.ok()
				continue
			}
			if errors.Is(err, redis.ErrClosed) {
				return // the Store was closed
			}
			if err != nil {
				if ctx.Err() == nil {
					_ = s.fail("revocation_read", err)
					sleepCtx(ctx, revocationRetry)
				}
				continue
			}
			s.ok()
			for _, st := range streams {
				for _, m := range st.Messages {
					last = m.ID
					if !s.deliver(ctx, out, m) {
						return
					}
				}
			}
		}
	}()
	select { // Revocations returns once the reader knows where "now" is
	case <-ready:
	case <-ctx.Done():
	case <-time.After(2 * time.Second): // Redis down: the reader starts when it is back
	}
	return out
}

// revocationStart is the stream's newest entry id ("0-0" when empty),
// retried until Redis answers or ctx ends.
func (s *Store) revocationStart(ctx context.Context) string {
	for {
		msgs, err := s.rdb.XRevRangeN(ctx, s.revocationKey(), "+", "-", 1).Result()
		if err == nil {
			s.ok()
			if len(msgs) == 0 {
				return "0-0"
			}
			return msgs[0].ID
		}
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return "$"
		}
		_ = s.fail("revocation_read", err)
		sleepCtx(ctx, revocationRetry)
	}
}

func (s *Store) deliver(ctx context.Context, out chan<- Revocation, m redis.XMessage) bool {
	raw, _ := m.Values["ev"].(string)
	var ev Revocation
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		_ = s.fail("revocation_decode", err)
		return true
	}
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
