package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/airlock/airlock/proxy/approval"
)

// ApprovalStore is the fleet's approval queue ([approval.Store]): pending
// entries and their waiter counts, recent decisions and remembered
// approvals in Redis, decisions broadcast by pub/sub, so a request held on
// one replica is released by a decision taken on any other. All keys share
// one hash tag (one Cluster slot), so every change is one atomic script.
// Redis unreachable: every call fails (ErrUnavailable), and the queue
// fails closed.
type ApprovalStore struct{ s *Store }

var _ approval.Store = (*ApprovalStore)(nil)

// decidedTTL is how long a decision stays readable by Decided.
const decidedTTL = 10 * time.Minute

// Approvals returns s's approval queue.
func (s *Store) Approvals() *ApprovalStore { return &ApprovalStore{s: s} }

func (a *ApprovalStore) base() string        { return a.s.key("appr", "{q}") + ":" }
func (a *ApprovalStore) byKey() string       { return a.base() + "bykey" }
func (a *ApprovalStore) order() string       { return a.base() + "order" }
func (a *ApprovalStore) channel() string     { return a.base() + "events" }
func (a *ApprovalStore) pk(id string) string { return a.base() + "p:" + id }

// decisionRecord keeps the key, which Decision does not marshal.
type decisionRecord struct {
	Key string `json:"key"`
	approval.Decision
}

// joinScript adds a waiter to key's entry, creating it when none.
//
//	KEYS 1 bykey, 2 order; ARGV 1 key, 2 id, 3 doc, 4 created ms, 5 pending prefix
var joinScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id and redis.call('EXISTS', ARGV[5] .. id) == 1 then
  local n = redis.call('HINCRBY', ARGV[5] .. id, 'waiters', 1)
  return {id, redis.call('HGET', ARGV[5] .. id, 'doc'), n, 0}
end
redis.call('HSET', ARGV[5] .. ARGV[2], 'doc', ARGV[3], 'waiters', 1, 'key', ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return {ARGV[2], ARGV[3], 1, 1}
`)

// dropPending removes entry ARGV[1] (prefix ARGV[2]) from KEYS bykey and
// order; a Lua fragment shared by leave and resolve.
const dropPending = `
local pk = ARGV[2] .. ARGV[1]
local key = redis.call('HGET', pk, 'key')
redis.call('DEL', pk)
redis.call('ZREM', KEYS[2], ARGV[1])
if key and redis.call('HGET', KEYS[1], key) == ARGV[1] then redis.call('HDEL', KEYS[1], key) end
`

// leaveScript: -1 not found, 0 others still wait, 1 entry removed.
var leaveScript = redis.NewScript(`
if redis.call('EXISTS', ARGV[2] .. ARGV[1]) == 0 then return -1 end
if redis.call('HINCRBY', ARGV[2] .. ARGV[1], 'waiters', -1) > 0 then return 0 end
` + dropPending + `
return 1
`)

// resolveScript records a decision: 0 when the entry is gone.
//
//	KEYS 1 bykey, 2 order; ARGV 1 id, 2 pending prefix, 3 decided key,
//	4 decision, 5 decided ttl ms, 6 remembered prefix, 7 durable (1/0),
//	8 remembered expiry unix ms (0: none), 9 channel
var resolveScript = redis.NewScript(`
local pk = ARGV[2] .. ARGV[1]
if redis.call('EXISTS', pk) == 0 then return 0 end
local rkey = ARGV[6] .. (redis.call('HGET', pk, 'key') or '')
` + dropPending + `
redis.call('SET', ARGV[3], ARGV[4], 'PX', ARGV[5])
if ARGV[7] == '1' then
  if tonumber(ARGV[8]) > 0 then
    redis.call('SET', rkey, ARGV[4], 'PXAT', ARGV[8])
  else
    redis.call('SET', rkey, ARGV[4])
  end
end
redis.call('PUBLISH', ARGV[9], ARGV[4])
return 1
`)

// Join implements approval.Store.
func (a *ApprovalStore) Join(ctx context.Context, p approval.Pending) (approval.Pending, bool, error) {
	p.Waiters = 0
	doc, err := json.Marshal(p)
	if err != nil {
		return approval.Pending{}, false, fmt.Errorf("encode pending approval: %w", err)
	}
	v, err := joinScript.Run(ctx, a.s.rdb, []string{a.byKey(), a.order()}, p.Key, p.ID, doc, p.Created.UnixMilli(), a.base()+"p:").Slice()
	if err = a.s.fail("approval_join", err); err != nil {
		return approval.Pending{}, false, err
	}
	if len(v) != 4 {
		return approval.Pending{}, false, fmt.Errorf("approval join answered %d values", len(v))
	}
	out, err := decodePending(v[1], v[2])
	if err != nil {
		return approval.Pending{}, false, err
	}
	out.Key = p.Key
	created, _ := v[3].(int64)
	return out, created == 1, nil
}

func decodePending(doc, waiters any) (approval.Pending, error) {
	var p approval.Pending
	s, _ := doc.(string)
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("decode pending approval: %w", ErrBadRecord)
	}
	switch w := waiters.(type) {
	case int64:
		p.Waiters = int(w)
	case string:
		p.Waiters, _ = strconv.Atoi(w)
	}
	return p, nil
}

// Leave implements approval.Store.
func (a *ApprovalStore) Leave(ctx context.Context, id string) (bool, error) {
	n, err := leaveScript.Run(ctx, a.s.rdb, []string{a.byKey(), a.order()}, id, a.base()+"p:").Int()
	if err = a.s.fail("approval_leave", err); err != nil {
		return false, err
	}
	if n < 0 {
		return false, approval.ErrNotFound
	}
	return n == 1, nil
}

// Get implements approval.Store.
func (a *ApprovalStore) Get(ctx context.Context, id string) (approval.Pending, error) {
	m, err := a.s.rdb.HGetAll(ctx, a.pk(id)).Result()
	if err = a.s.fail("approval_get", err); err != nil {
		return approval.Pending{}, err
	}
	if m["doc"] == "" {
		return approval.Pending{}, approval.ErrNotFound
	}
	p, err := decodePending(m["doc"], m["waiters"])
	p.Key = m["key"]
	return p, err
}

// List implements approval.Store.
func (a *ApprovalStore) List(ctx context.Context) ([]approval.Pending, error) {
	ids, err := a.s.rdb.ZRange(ctx, a.order(), 0, -1).Result()
	if err = a.s.fail("approval_list", err); err != nil {
		return nil, err
	}
	out := make([]approval.Pending, 0, len(ids))
	for _, id := range ids {
		p, err := a.Get(ctx, id)
		if errors.Is(err, approval.ErrNotFound) {
			continue // decided meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Resolve implements approval.Store.
func (a *ApprovalStore) Resolve(ctx context.Context, d approval.Decision) error {
	key, err := a.s.rdb.HGet(ctx, a.pk(d.ID), "key").Result()
	if errors.Is(err, redis.Nil) {
		return approval.ErrNotFound
	}
	if err = a.s.fail("approval_resolve", err); err != nil {
		return err
	}
	d.Key = key
	doc, err := json.Marshal(decisionRecord{Key: key, Decision: d})
	if err != nil {
		return fmt.Errorf("encode approval decision: %w", err)
	}
	durable, until := "0", int64(0)
	if d.Approved && d.Remember != approval.RememberOnce && d.Remember != approval.RememberSession {
		durable = "1"
		if !d.Until.IsZero() {
			until = d.Until.UnixMilli()
		}
	}
	n, err := resolveScript.Run(ctx, a.s.rdb, []string{a.byKey(), a.order()}, d.ID, a.base()+"p:", a.base()+"d:"+d.ID,
		doc, decidedTTL.Milliseconds(), a.base()+"r:", durable, until, a.channel()).Int()
	if err = a.s.fail("approval_resolve", err); err != nil {
		return err
	}
	if n == 0 {
		return approval.ErrNotFound
	}
	return nil
}

func decodeDecision(s string) (approval.Decision, error) {
	var r decisionRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return approval.Decision{}, fmt.Errorf("decode approval decision: %w", ErrBadRecord)
	}
	r.Decision.Key = r.Key
	return r.Decision, nil
}

// Decided implements approval.Store.
func (a *ApprovalStore) Decided(ctx context.Context, id string) (approval.Decision, bool, error) {
	s, err := a.s.rdb.Get(ctx, a.base()+"d:"+id).Result()
	if errors.Is(err, redis.Nil) {
		return approval.Decision{}, false, nil
	}
	if err = a.s.fail("approval_decided", err); err != nil {
		return approval.Decision{}, false, err
	}
	d, err := decodeDecision(s)
	return d, err == nil, err
}

// Remembered implements approval.Store.
func (a *ApprovalStore) Remembered(ctx context.Context, key string, now time.Time) (approval.Decision, bool, error) {
	s, err := a.s.rdb.Get(ctx, a.base()+"r:"+key).Result()
	if errors.Is(err, redis.Nil) {
		return approval.Decision{}, false, nil
	}
	if err = a.s.fail("approval_remembered", err); err != nil {
		return approval.Decision{}, false, err
	}
	d, err := decodeDecision(s)
	if err != nil {
		return d, false, err
	}
	return d, d.Approved && (d.Until.IsZero() || now.Before(d.Until)), nil
}

// Subscribe implements approval.Store: decisions from every replica, by
// pub/sub (a message lost while Redis was away is covered by the waiters
// polling Decided).
func (a *ApprovalStore) Subscribe(ctx context.Context) (<-chan approval.Decision, error) {
	ps := a.s.rdb.Subscribe(ctx, a.channel())
	out := make(chan approval.Decision, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		in := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				d, err := decodeDecision(m.Payload)
				if err != nil {
					_ = a.s.fail("approval_decode", err)
					continue
				}
				select {
				case out <- d:
				default: // slow subscriber: it polls Decided
				}
			}
		}
	}()
	return out, nil
}
