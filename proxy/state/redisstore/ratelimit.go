package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is the generic cell rate algorithm for one bucket.
//
//	KEYS[1]  the bucket: the theoretical arrival time (TAT) in µs of Redis time
//	ARGV[1]  emission interval T in µs (1/rate)
//	ARGV[2]  burst b (requests admitted at once from an idle bucket)
//
// With now from Redis TIME: tat = max(stored, now); the request is
// admitted iff now >= tat + T - b·T, and then the TAT becomes tat + T
// (expiring when it falls back to now, so idle buckets vanish). A refused
// request changes nothing and gets retry-after = tat + T - b·T - now µs.
// Result: {1, 0} admitted, {0, retryAfterMicros} refused. Read, decide and
// write happen inside one script, so replicas cannot both take the last
// token.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + T
local allow_at = new - T * burst
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1)
return {1, 0}
`)

// gcraBatchScript is gcraScript for many buckets in one call: KEYS[i]
// with ARGV[2i-1] (interval) and ARGV[2i] (burst), decided one after the
// other with one clock reading, answers flattened {ok1, retry1, ok2, ...}.
// Each decision is the one gcraScript would make; the whole batch is
// atomic. Used when all keys can meet in one script (not on Cluster).
var gcraBatchScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local T = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new = tat + T
  local allow_at = new - T * burst
  if now < allow_at then
    out[2 * i - 1] = 0
    out[2 * i] = allow_at - now
  else
    redis.call('SET', key, string.format('%.0f', new), 'PX', math.floor((new - now) / 1000) + 1)
    out[2 * i - 1] = 1
    out[2 * i] = 0
  end
end
return out
`)

// Allow takes one request from the bucket key (one per agent × rule; the
// caller names it, e.g. "research-bot/openai") that admits rate requests
// per second with a burst of burst. Refused, it returns how long until a
// request would be admitted, from the shared state.
//
// Concurrent calls are batched: what is queued while a worker's previous
// round trip was in flight goes as one script call deciding every request
// in order (on Cluster, as a pipeline of one script call per request), so
// many requests cost one round trip; each decision is still made by
// Redis, atomically. Options.NoBatch sends each call on its own.
//
// When Redis is unreachable, ok follows Options.RateLimitMode and err
// wraps ErrUnavailable. rate <= 0 or burst <= 0 admits without asking.
func (s *Store) Allow(ctx context.Context, key string, rate float64, burst int) (ok bool, retryAfter time.Duration, err error) {
	if rate <= 0 || burst <= 0 || math.IsInf(rate, 1) {
		return true, 0, nil
	}
	interval := int64(math.Ceil(1e6 / rate))
	k := s.key("rl", tag(key))
	var res []int64
	if s.opts.NoBatch {
		res, err = s.gcraOne(ctx, k, interval, burst)
	} else {
		res, err = s.batcher.do(ctx, k, interval, burst)
	}
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			open := s.opts.RateLimitMode == FailOpen
			s.opts.Log.Warn("rate limit state unavailable", zapMode(s.opts.RateLimitMode), zapErr(err))
			return open, 0, err
		}
		return false, 0, err
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}

func (s *Store) gcraOne(ctx context.Context, key string, interval int64, burst int) ([]int64, error) {
	v, err := gcraScript.Run(ctx, s.rdb, []string{key}, interval, burst).Int64Slice()
	if err != nil {
		return nil, s.fail("ratelimit", err)
	}
	if len(v) != 2 {
		return nil, s.fail("ratelimit", fmt.Errorf("gcra script answered %d values, want 2", len(v)))
	}
	return v, nil
}

// isNoScript reports a script cache miss (Redis restarted or flushed).
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
