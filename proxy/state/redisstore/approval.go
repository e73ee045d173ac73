package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotPending is returned when an approval id is unknown, expired or
// already decided.
var ErrNotPending = errors.New("approval not pending")

// approvalPoll is how often a waiter re-reads its decision, in case the
// pub/sub message was lost to a reconnect.
const approvalPoll = 500 * time.Millisecond

// Decision is a person's answer to a pending approval, or a remembered one.
type Decision struct {
	Approved bool      `json:"approved"`
	Remember string    `json:"remember,omitempty"` // once | session | 1h | always ...
	By       string    `json:"by,omitempty"`       // approver: CLI user, console user, token name
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	Replica  string    `json:"replica,omitempty"` // where it was decided
}

// Pending is one entry of the shared approval queue.
type Pending struct {
	ID      string
	Key     string // the (agent, rule) key requests share the entry by
	Payload []byte // the caller's description (JSON: agent, method, host, ...)
	Created time.Time
	Replica string // where it was first asked
}

// All approval keys share the hash tag {approvals}: one slot, so the
// scripts may name entry keys they compute.
func (s *Store) apprKey(parts ...string) string {
	return s.key(append([]string{"appr", "{approvals}"}, parts...)...)
}

// pendScript creates the pending entry of key unless a live one exists.
//
//	KEYS  1 pend:<key> (→ id), 2 index (zset id → expiry ms)
//	ARGV  1 new id, 2 payload, 3 ttl ms, 4 entry key prefix, 5 replica, 6 key
//
// Returns {id, created 0|1}: concurrent askers on every replica share one id.
var pendScript = redis.NewScript(`
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1])
if cur and redis.call('EXISTS', ARGV[4] .. cur) == 1 then return {cur, 0} end
local id, ttl = ARGV[1], tonumber(ARGV[3])
redis.call('SET', KEYS[1], id, 'PX', ttl)
redis.call('HSET', ARGV[4] .. id, 'key', ARGV[6], 'payload', ARGV[2], 'created', now_ms, 'replica', ARGV[5])
redis.call('PEXPIRE', ARGV[4] .. id, ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
redis.call('ZADD', KEYS[2], now_ms + ttl, id)
return {id, 1}
`)

// decideScript records the decision of id and publishes id.
//
//	KEYS  1 index
//	ARGV  1 id, 2 decision JSON, 3 decision ttl ms, 4 entry prefix,
//	      5 pend prefix, 6 decision prefix, 7 channel
//
// Returns 0 when id is not pending. Removing the entry and writing the
// decision are one step: two deciders cannot both win.
var decideScript = redis.NewScript(`
local id = ARGV[1]
local e = ARGV[4] .. id
local key = redis.call('HGET', e, 'key')
if not key then return 0 end
redis.call('DEL', e)
if redis.call('GET', ARGV[5] .. key) == id then redis.call('DEL', ARGV[5] .. key) end
redis.call('ZREM', KEYS[1], id)
redis.call('SET', ARGV[6] .. id, ARGV[2], 'PX', ARGV[3])
redis.call('PUBLISH', ARGV[7], id)
return 1
`)

// Pend puts a pending approval for key (one per agent × rule, or per
// agent × host for unmatched egress) with payload, alive for ttl, unless
// one is already pending: then it returns that entry's id and created
// false. Redis unreachable: ErrUnavailable (approvals fail closed).
func (s *Store) Pend(ctx context.Context, key string, payload []byte, ttl time.Duration) (id string, created bool, err error) {
	v, err := pendScript.Run(ctx, s.rdb, []string{s.apprKey("pend", key), s.apprKey("index")},
		randomID(), payload, ttl.Milliseconds(), s.apprKey("entry")+":", s.opts.ReplicaID, key).Slice()
	if err = s.fail("approval_pend", err); err != nil {
		return "", false, err
	}
	if len(v) != 2 {
		return "", false, fmt.Errorf("pend script answered %d values, want 2", len(v))
	}
	id, _ = v[0].(string)
	n, _ := v[1].(int64)
	return id, n == 1, nil
}

// Decide records d for pending id and wakes its waiters on every replica
// (pub/sub). ErrNotPending: unknown, expired or already decided.
func (s *Store) Decide(ctx context.Context, id string, d Decision) error {
	if d.At.IsZero() {
		d.At = time.Now()
	}
	if d.Replica == "" {
		d.Replica = s.opts.ReplicaID
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	n, err := decideScript.Run(ctx, s.rdb, []string{s.apprKey("index")},
		id, b, (10 * time.Minute).Milliseconds(), s.apprKey("entry")+":", s.apprKey("pend")+":",
		s.apprKey("decision")+":", s.chanApprovals()).Int()
	if err = s.fail("approval_decide", err); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("approval %s: %w (list pending ones with airlock approvals)", id, ErrNotPending)
	}
	return nil
}

// Cancel ends pending id without approval (its last waiter gave up):
// waiters get a Decision with Reason "cancelled".
func (s *Store) Cancel(ctx context.Context, id string) error {
	return s.Decide(ctx, id, Decision{Reason: "cancelled"})
}

// Wait blocks until pending id is decided (on any replica) or ctx ends.
// A decision reaches it through pub/sub at once, or within approvalPoll
// if the message was lost. ErrNotPending: the entry expired undecided.
// While Redis is unreachable Wait keeps trying; if ctx ends then, the
// error wraps ErrUnavailable (fail closed: the caller refuses).
func (s *Store) Wait(ctx context.Context, id string) (Decision, error) {
	signal, stop := s.subs.watch(s.chanApprovals(), id)
	defer stop()
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	var lastErr error
	for {
		d, found, err := s.decision(ctx, id)
		switch {
		case err == nil && found:
			return d, nil
		case errors.Is(err, ErrNotPending):
			return Decision{}, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return Decision{}, lastErr
			}
			return Decision{}, ctx.Err()
		case <-signal:
		case <-tick.C:
		}
	}
}

// decision reads id's decision; ErrNotPending if neither a decision nor
// the entry exists.
func (s *Store) decision(ctx context.Context, id string) (Decision, bool, error) {
	pipe := s.rdb.Pipeline()
	get := pipe.Get(ctx, s.apprKey("decision", id))
	ex := pipe.Exists(ctx, s.apprKey("entry", id))
	_, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return Decision{}, false, s.fail("approval_wait", err)
	}
	s.ok()
	if b, err := get.Bytes(); err == nil {
		var d Decision
		if err := json.Unmarshal(b, &d); err != nil {
			return Decision{}, false, fmt.Errorf("approval %s: bad decision in redis: %w", id, err)
		}
		return d, true, nil
	}
	if ex.Val() == 0 {
		return Decision{}, false, fmt.Errorf("approval %s: %w", id, ErrNotPending)
	}
	return Decision{}, false, nil
}

// ListPending returns the live pending entries, oldest first.
func (s *Store) ListPending(ctx context.Context) ([]Pending, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.apprKey("index"), &redis.ZRangeBy{
		Min: fmt.Sprint(time.Now().UnixMilli()), Max: "+inf"}).Result()
	if err = s.fail("approval_list", err); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.apprKey("entry", id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.fail("approval_list", err)
	}
	out := make([]Pending, 0, len(ids))
	for i, id := range ids {
		m := cmds[i].Val()
		if m["key"] == "" {
			continue // decided or expired since the range read
		}
		var ms int64
		fmt.Sscan(m["created"], &ms)
		out = append(out, Pending{ID: id, Key: m["key"], Payload: []byte(m["payload"]),
			Created: time.UnixMilli(ms), Replica: m["replica"]})
	}
	return out, nil
}

// Remember stores d as the standing answer for key for ttl (0: until
// Forget). Redis unreachable: ErrUnavailable.
func (s *Store) Remember(ctx context.Context, key string, d Decision, ttl time.Duration) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	return s.fail("approval_remember", s.rdb.Set(ctx, s.apprKey("mem", key), b, max(ttl, 0)).Err())
}

// Remembered returns the standing answer for key, if any. Redis
// unreachable: found false and ErrUnavailable (fail closed: ask again).
func (s *Store) Remembered(ctx context.Context, key string) (d Decision, found bool, err error) {
	b, err := s.rdb.Get(ctx, s.apprKey("mem", key)).Bytes()
	if errors.Is(err, redis.Nil) {
		s.ok()
		return Decision{}, false, nil
	}
	if err = s.fail("approval_remembered", err); err != nil {
		return Decision{}, false, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return Decision{}, false, fmt.Errorf("remembered approval %s: bad value in redis: %w", key, err)
	}
	return d, true, nil
}

// Forget drops the standing answer for key.
func (s *Store) Forget(ctx context.Context, key string) error {
	return s.fail("approval_forget", s.rdb.Del(ctx, s.apprKey("mem", key)).Err())
}
