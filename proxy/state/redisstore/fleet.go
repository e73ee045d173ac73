package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replica is one `airlock serve` of the fleet as it announces itself.
type Replica struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr,omitempty"`    // proxy listener, for operators
	Version string    `json:"version,omitempty"` // airlock version
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"` // last heartbeat, replica's clock
}

func (s *Store) fleetKey(parts ...string) string {
	return s.key(append([]string{"fleet", "{fleet}"}, parts...)...)
}

// Beat announces r (ID defaults to this replica's) as alive for ttl.
func (s *Store) Beat(ctx context.Context, r Replica, ttl time.Duration) error {
	if r.ID == "" {
		r.ID = s.opts.ReplicaID
	}
	r.Seen = time.Now()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode replica: %w", err)
	}
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.fleetKey("replica", r.ID), b, ttl)
	pipe.ZAdd(ctx, s.fleetKey("members"), redis.Z{Score: float64(r.Seen.Add(ttl).UnixMilli()), Member: r.ID})
	_, err = pipe.Exec(ctx)
	return s.fail("fleet_beat", err)
}

// Heartbeat beats every interval (ttl = 3 intervals) until ctx ends, then
// leaves the fleet. Failures are counted and retried at the next beat.
func (s *Store) Heartbeat(ctx context.Context, r Replica, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_ = s.Beat(ctx, r, 3*every)
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = s.Leave(lctx)
			cancel()
			return
		case <-t.C:
		}
	}
}

// Leave removes this replica from the fleet at once.
func (s *Store) Leave(ctx context.Context) error {
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.fleetKey("replica", s.opts.ReplicaID))
	pipe.ZRem(ctx, s.fleetKey("members"), s.opts.ReplicaID)
	_, err := pipe.Exec(ctx)
	return s.fail("fleet_leave", err)
}

// Replicas lists the live replicas (heartbeat within its ttl), by ID.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	members := s.fleetKey("members")
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if err := s.rdb.ZRemRangeByScore(ctx, members, "-inf", "("+now).Err(); err != nil {
		return nil, s.fail("fleet_list", err)
	}
	ids, err := s.rdb.ZRange(ctx, members, 0, -1).Result()
	if err = s.fail("fleet_list", err); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.fleetKey("replica", id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err = s.fail("fleet_list", err); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Replica, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired between the two reads
		}
		var r Replica
		if json.Unmarshal([]byte(str), &r) == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Replica) int { return cmpString(a.ID, b.ID) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
