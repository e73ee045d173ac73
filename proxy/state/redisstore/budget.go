package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ErrExceeded is returned by [Store.Reserve] when the amount does not fit
// what is left of the budget; the Reservation says what is used.
var ErrExceeded = errors.New("budget exceeded")

// Window is the period a budget counts in.
//
// A calendar window (hour, day, month in a time zone) has an ID naming it
// ("2026-12" for December) and its End; usage with the same ID adds up,
// and the counter expires a day after End.
//
// A rolling window has Rolling > 0 (e.g. 24h) and no ID: usage is counted
// in Rolling/24 buckets (at least a minute) of Redis time, so a use leaves
// the window up to one bucket late (the budget errs on the strict side).
type Window struct {
	ID      string
	End     time.Time
	Rolling time.Duration
}

// Reservation is what [Store.Reserve] took. Pass it to Commit or Release.
type Reservation struct {
	Key    string
	Window Window
	ID     string
	Amount int64
	// Granted is true when the amount was reserved (or, with Local, admitted
	// without Redis by BudgetMode FailOpen).
	Granted bool
	// Local: admitted while Redis was unreachable; nothing is recorded and
	// Commit/Release do nothing.
	Local bool
	// Used and Reserved are the budget's committed and in-flight totals as
	// Redis saw them (Reserved includes this reservation when Granted).
	Used, Reserved int64
}

// budgetPurge drops reservations whose TTL passed (their replica died),
// then sums the live ones into `reserved`; budgetUsed sums the window.
const budgetPurge = `
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[3], id) end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms) end
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do reserved = reserved + tonumber(v) end
local mode, field = ARGV[1], ARGV[2]
local used = 0
if mode == 'f' then
  used = tonumber(redis.call('HGET', KEYS[1], field) or '0')
else
  local size, n = tonumber(ARGV[2]), tonumber(ARGV[3])
  local cur = math.floor(now_ms / 1000 / size)
  field = string.format('%d', cur)
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local idx = tonumber(all[i])
    if idx <= cur - n then redis.call('HDEL', KEYS[1], all[i]) else used = used + tonumber(all[i + 1]) end
  end
end
`

// reserveScript reserves ARGV[5] against limit ARGV[6] as id ARGV[7] for
// ARGV[8] ms, iff used + reserved + amount <= limit.
//
//	KEYS  1 used (hash: window field → amount), 2 reservation expiries
//	      (zset id → expiry ms), 3 reservation amounts (hash id → amount)
//	ARGV  1 'f' (calendar) or 'r' (rolling); 2 window ID or bucket size s;
//	      3 bucket count (rolling); 4 unused; 5 amount; 6 limit; 7 id; 8 ttl ms
//
// Returns {granted 0|1, used, reserved}. Everything happens in one script:
// two replicas cannot both fit the last slot.
var reserveScript = redis.NewScript(budgetPurge + `
local amount, limit, id, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
if used + reserved + amount > limit then return {0, used, reserved} end
redis.call('HSET', KEYS[3], id, string.format('%.0f', amount))
redis.call('ZADD', KEYS[2], now_ms + ttl, id)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
redis.call('PEXPIRE', KEYS[3], ttl * 2)
return {1, used, reserved + amount}
`)

// commitScript ends reservation ARGV[7] and adds the actual amount
// ARGV[5] to the window (even if the reservation had expired: the usage
// happened). ARGV[4] is the used hash's expiry (ms since epoch) for
// calendar windows. Returns {had reservation 0|1, used after}.
var commitScript = redis.NewScript(budgetPurge + `
local actual, id = tonumber(ARGV[5]), ARGV[7]
local had = redis.call('HDEL', KEYS[3], id)
redis.call('ZREM', KEYS[2], id)
if actual > 0 then
  redis.call('HINCRBY', KEYS[1], field, string.format('%.0f', actual))
  used = used + actual
  if mode == 'f' then
    redis.call('PEXPIREAT', KEYS[1], ARGV[4])
  else
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * tonumber(ARGV[3]) * 2000)
  end
end
return {had, used}
`)

// releaseScript ends reservation ARGV[7] without usage. Returns {had, used, reserved after}.
var releaseScript = redis.NewScript(budgetPurge + `
local had = redis.call('HDEL', KEYS[3], ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[7])
if had == 1 then reserved = reserved - tonumber(ARGV[5]) end
return {had, used, reserved}
`)

// usedScript reads the totals (and purges expired reservations).
var usedScript = redis.NewScript(budgetPurge + `
return {0, used, reserved}
`)

// budgetKeys are the three keys of budget key in one hash slot.
func (s *Store) budgetKeys(key string, w Window) []string {
	t := tag(key)
	used := s.key("budget", t, "rolling")
	if w.Rolling <= 0 {
		used = s.key("budget", t, "w", w.ID)
	}
	return []string{used, s.key("budget", t, "resv"), s.key("budget", t, "resamt")}
}

// windowArgs are ARGV 1-4 for w.
func windowArgs(w Window) []any {
	if w.Rolling > 0 {
		size := max(int64(60), int64(w.Rolling.Seconds())/24)
		n := int64(math.Ceil(w.Rolling.Seconds() / float64(size)))
		return []any{"r", size, n, 0}
	}
	return []any{"f", w.ID, 0, w.End.Add(24 * time.Hour).UnixMilli()}
}

func validWindow(w Window) error {
	if w.Rolling <= 0 && w.ID == "" {
		return errors.New("budget window needs an ID (calendar) or Rolling > 0")
	}
	return nil
}

// Reserve takes amount (tokens, or micro-USD: integers) from the budget
// key in window w if used + reserved + amount <= limit, for at most
// Options.ReservationTTL; the caller then calls Commit with the actual
// amount or Release. Over the limit it returns ErrExceeded with the
// Reservation's Used and Reserved filled. Redis unreachable: BudgetMode
// FailClosed (default) returns ErrUnavailable and Granted false; FailOpen
// returns ErrUnavailable with a Local, Granted reservation.
func (s *Store) Reserve(ctx context.Context, key string, w Window, amount, limit int64) (Reservation, error) {
	r := Reservation{Key: key, Window: w, ID: randomID(), Amount: amount}
	if err := validWindow(w); err != nil {
		return r, err
	}
	if amount < 0 || limit < 0 {
		return r, fmt.Errorf("budget %s: negative amount %d or limit %d", key, amount, limit)
	}
	args := append(windowArgs(w), amount, limit, r.ID, s.opts.ReservationTTL.Milliseconds())
	v, err := reserveScript.Run(ctx, s.rdb, s.budgetKeys(key, w), args...).Int64Slice()
	if err == nil && len(v) != 3 {
		err = fmt.Errorf("reserve script answered %d values, want 3", len(v))
	}
	if err = s.fail("budget_reserve", err); err != nil {
		if errors.Is(err, ErrUnavailable) && s.opts.BudgetMode == FailOpen {
			r.Granted, r.Local = true, true
		}
		if errors.Is(err, ErrUnavailable) {
			s.opts.Log.Warn("budget state unavailable", zap.String("budget", key), zapMode(s.opts.BudgetMode), zapErr(err))
		}
		return r, err
	}
	r.Granted, r.Used, r.Reserved = v[0] == 1, v[1], v[2]
	if !r.Granted {
		return r, fmt.Errorf("budget %s: %d used + %d reserved + %d asked > %d: %w", key, r.Used, r.Reserved, amount, limit, ErrExceeded)
	}
	return r, nil
}

// Commit ends r, adding actual to the budget's usage. It reports whether
// the reservation was still held (false: it had expired or was already
// ended; the usage is added anyway, once per call).
func (s *Store) Commit(ctx context.Context, r Reservation, actual int64) (held bool, err error) {
	if r.Local || !r.Granted {
		return false, nil
	}
	if actual < 0 {
		return false, fmt.Errorf("budget %s: negative usage %d", r.Key, actual)
	}
	args := append(windowArgs(r.Window), actual, 0, r.ID, 0)
	v, err := commitScript.Run(ctx, s.rdb, s.budgetKeys(r.Key, r.Window), args...).Int64Slice()
	if err = s.fail("budget_commit", err); err != nil {
		return false, err
	}
	return len(v) > 0 && v[0] == 1, nil
}

// Release ends r without usage (error, abort, cancel). It reports whether
// the reservation was still held.
func (s *Store) Release(ctx context.Context, r Reservation) (held bool, err error) {
	if r.Local || !r.Granted {
		return false, nil
	}
	args := append(windowArgs(r.Window), r.Amount, 0, r.ID, 0)
	v, err := releaseScript.Run(ctx, s.rdb, s.budgetKeys(r.Key, r.Window), args...).Int64Slice()
	if err = s.fail("budget_release", err); err != nil {
		return false, err
	}
	return len(v) > 0 && v[0] == 1, nil
}

// Used returns the budget's committed usage in w and what live
// reservations hold.
func (s *Store) Used(ctx context.Context, key string, w Window) (used, reserved int64, err error) {
	if err := validWindow(w); err != nil {
		return 0, 0, err
	}
	args := append(windowArgs(w), 0, 0, "", 0)
	v, err := usedScript.Run(ctx, s.rdb, s.budgetKeys(key, w), args...).Int64Slice()
	if err = s.fail("budget_used", err); err != nil {
		return 0, 0, err
	}
	return v[1], v[2], nil
}

// extendScript pushes live reservation ARGV[1]'s expiry to now + ARGV[2] ms.
//
//	KEYS  1 used (unused), 2 reservation expiries, 3 reservation amounts
//
// Returns 0 when the reservation is gone or already past its expiry.
var extendScript = redis.NewScript(`
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '0')
if exp <= now_ms or redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', now_ms + ttl, ARGV[1])
if redis.call('PTTL', KEYS[2]) < ttl * 2 then
  redis.call('PEXPIRE', KEYS[2], ttl * 2)
  redis.call('PEXPIRE', KEYS[3], ttl * 2)
end
return 1
`)

// Extend keeps r alive for another Options.ReservationTTL (a stream that
// outlives it calls this now and then). It reports whether r was still
// held; false means it lapsed and the budget no longer counts it.
func (s *Store) Extend(ctx context.Context, r Reservation) (held bool, err error) {
	if r.Local || !r.Granted {
		return false, nil
	}
	n, err := extendScript.Run(ctx, s.rdb, s.budgetKeys(r.Key, r.Window), r.ID, s.opts.ReservationTTL.Milliseconds()).Int()
	if err = s.fail("budget_extend", err); err != nil {
		return false, err
	}
	return n == 1, nil
}
