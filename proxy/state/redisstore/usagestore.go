package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/usage"
)

// UsageStore is the fleet's budget state ([usage.Store]): usage buckets
// and every budget's in-flight reservations in Redis, checked and taken
// for all of a request's budgets in one script, so the fleet never
// overshoots a budget however its requests spread over replicas. A
// reservation whose replica died stops counting at its expiry. The usage
// totals by day × agent × model (`airlock usage`) stay in this replica's
// local store (rows), which also receives every commit.
//
// Redis unreachable: Options.BudgetMode FailClosed (default) refuses the
// request (the error reaches the meter), FailOpen admits it unrecorded;
// both are logged and counted under airlock_state_errors_total.
type UsageStore struct {
	s     *Store
	local usage.Store // rows for `airlock usage`; never consulted for limits
}

var _ usage.Store = (*UsageStore)(nil)

// bucketTTL bounds how long a usage bucket is kept after its last charge
// (the longest budget window is a month).
const bucketTTL = 40 * 24 * time.Hour

// noExpiry is the score of a reservation without an expiry.
const noExpiry = int64(1) << 52

// Usage returns s's budget state; local keeps the usage totals (may be nil).
func (s *Store) Usage(local usage.Store) *UsageStore { return &UsageStore{s: s, local: local} }

func (u *UsageStore) base() string { return u.s.key("usage", "{u}") + ":" }

// usageReserveScript checks every claim, then reserves them all, or none.
//
//	ARGV 1 now ms, 2 expiry ms, 3 id, 4 base, 5 claims, then per claim:
//	budget, limit, amount, buckets n, n bucket names
//
// Returns {0} reserved, {-2} duplicate id, or {-1, claim index, used,
// reserved, per-bucket usage...} for the first claim over its limit.
var usageReserveScript = redis.NewScript(`
local now, exp, id, base = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
if redis.call('EXISTS', base .. 'h:' .. id) == 1 then return {-2} end
local i = 6
local claims = {}
for c = 1, tonumber(ARGV[5]) do
  local budget, limit, amount, nb = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local used, per = 0, {}
  for b = 1, nb do
    local v = tonumber(redis.call('GET', base .. 'b:' .. ARGV[i]) or '0')
    per[b] = v
    used = used + v
    i = i + 1
  end
  local z, h = base .. 'z:' .. budget, base .. 'a:' .. budget
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, d in ipairs(dead) do redis.call('HDEL', h, d) end
  if #dead > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  local reserved = 0
  for _, v in ipairs(redis.call('HVALS', h)) do reserved = reserved + tonumber(v) end
  if used + reserved + amount > limit then
    local out = {-1, c - 1, used, reserved}
    for b = 1, nb do out[4 + b] = per[b] end
    return out
  end
  claims[c] = {budget, amount}
end
local hk = base .. 'h:' .. id
for _, cl in ipairs(claims) do
  redis.call('HSET', base .. 'a:' .. cl[1], id, cl[2])
  redis.call('ZADD', base .. 'z:' .. cl[1], exp, id)
  redis.call('RPUSH', hk, cl[1])
end
if #claims > 0 then redis.call('PEXPIREAT', hk, math.min(exp, now + 86400000) + 60000) end
return {0}
`)

// usageDropScript ends reservation ARGV[2] and adds the charges.
//
//	ARGV 1 base, 2 id, 3 bucket ttl ms, then bucket, amount pairs
var usageDropScript = redis.NewScript(`
local base, id = ARGV[1], ARGV[2]
local hk = base .. 'h:' .. id
for _, b in ipairs(redis.call('LRANGE', hk, 0, -1)) do
  redis.call('HDEL', base .. 'a:' .. b, id)
  redis.call('ZREM', base .. 'z:' .. b, id)
end
redis.call('DEL', hk)
for i = 4, #ARGV, 2 do
  local k = base .. 'b:' .. ARGV[i]
  redis.call('INCRBY', k, ARGV[i + 1])
  redis.call('PEXPIRE', k, ARGV[3])
end
return 0
`)

// Reserve implements usage.Store.
func (u *UsageStore) Reserve(ctx context.Context, r usage.Reservation) error {
	exp := noExpiry
	if !r.Expires.IsZero() {
		exp = r.Expires.UnixMilli()
	}
	args := []any{r.Now.UnixMilli(), exp, r.ID, u.base(), len(r.Claims)}
	for _, c := range r.Claims {
		args = append(args, c.Budget, c.Limit, c.Amount, len(c.Buckets))
		for _, b := range c.Buckets {
			args = append(args, b)
		}
	}
	v, err := usageReserveScript.Run(ctx, u.s.rdb, []string{u.base() + "h:" + r.ID}, args...).Int64Slice()
	if err = u.s.fail("budget_reserve", err); err != nil {
		if errors.Is(err, ErrUnavailable) {
			u.s.opts.Log.Warn("budget state unavailable", zapMode(u.s.opts.BudgetMode), zapErr(err))
			if u.s.opts.BudgetMode == FailOpen {
				return nil // admitted, not recorded
			}
		}
		return err
	}
	switch {
	case len(v) == 1 && v[0] == 0:
		return nil
	case len(v) == 1 && v[0] == -2:
		return usage.ErrDuplicateReservation
	case len(v) >= 4 && v[0] == -1:
		return &usage.OverLimitError{Claim: int(v[1]), Used: v[2], Reserved: v[3], PerBucket: v[4:]}
	}
	return fmt.Errorf("usage reserve script answered %v", v)
}

func (u *UsageStore) drop(ctx context.Context, op, id string, charges []usage.Charge) error {
	args := []any{u.base(), id, bucketTTL.Milliseconds()}
	for _, c := range charges {
		if c.Amount > 0 {
			args = append(args, c.Bucket, c.Amount)
		}
	}
	return u.s.fail(op, usageDropScript.Run(ctx, u.s.rdb, []string{u.base() + "h:" + id}, args...).Err())
}

// Commit implements usage.Store.
func (u *UsageStore) Commit(ctx context.Context, id string, charges []usage.Charge, rec usage.Record) error {
	err := u.drop(ctx, "budget_commit", id, charges)
	if err != nil {
		u.s.opts.Log.Error("budget usage not recorded in the fleet state", zap.String("reservation", id), zapErr(err))
	}
	if u.local != nil {
		if lerr := u.local.Commit(ctx, id, charges, rec); lerr != nil && err == nil {
			err = lerr
		}
	}
	return err
}

// Release implements usage.Store.
func (u *UsageStore) Release(ctx context.Context, id string) error {
	return u.drop(ctx, "budget_release", id, nil)
}

// Window implements usage.Store.
func (u *UsageStore) Window(ctx context.Context, budget string, buckets []string) (int64, int64, error) {
	pipe := u.s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(buckets))
	for i, b := range buckets {
		gets[i] = pipe.Get(ctx, u.base()+"b:"+b)
	}
	vals := pipe.HVals(ctx, u.base()+"a:"+budget)
	_, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, u.s.fail("budget_used", err)
	}
	var used, reserved int64
	for _, g := range gets {
		n, _ := g.Int64()
		used += n
	}
	for _, v := range vals.Val() {
		var n int64
		fmt.Sscan(v, &n)
		reserved += n
	}
	return used, reserved, nil
}
