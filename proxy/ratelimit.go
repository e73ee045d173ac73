package proxy

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock/airlock/policy"
)

// rateLimits holds one token bucket per (agent, rule name). Buckets outlive
// policy reloads: a rule whose rate changed gets its bucket's limit and
// burst updated in place, so a reload never hands every agent a fresh
// burst. The zero value is ready to use.
type rateLimits struct {
	mu      sync.Mutex // guards buckets
	buckets map[bucketKey]*bucket
}

type bucketKey struct{ agent, rule string }

type bucket struct {
	lim   *rate.Limiter
	limit rate.Limit
	burst int
}

// maxBuckets bounds the map; agent and rule names come from configuration,
// so reaching it means many reloads renamed rules: stale buckets go.
const maxBuckets = 100_000

// limitOf converts a rule's rate limit to a token rate and burst.
func limitOf(rl *policy.RateLimit) (rate.Limit, int) {
	burst := rl.Burst
	if burst <= 0 {
		burst = rl.Count
	}
	if rl.Per <= 0 {
		return rate.Inf, burst
	}
	return rate.Limit(float64(rl.Count) / rl.Per.Seconds()), burst
}

// take takes a token for agent under rule at now. When none is left it
// returns how long until one will be.
func (l *rateLimits) take(agent string, rule *policy.Rule, now time.Time) (ok bool, wait time.Duration) {
	if rule.RateLimit == nil || rule.RateLimit.Count <= 0 {
		return true, 0
	}
	limit, burst := limitOf(rule.RateLimit)
	b := l.bucket(bucketKey{agent, rule.Name}, limit, burst, now)
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Duration(math.MaxInt64)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket returns the limiter of k, created or updated to limit and burst.
func (l *rateLimits) bucket(k bucketKey, limit rate.Limit, burst int, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[bucketKey]*bucket)
	}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			clear(l.buckets)
		}
		b = &bucket{lim: rate.NewLimiter(limit, burst), limit: limit, burst: burst}
		l.buckets[k] = b
		return b.lim
	}
	if b.limit != limit {
		b.lim.SetLimitAt(now, limit)
		b.limit = limit
	}
	if b.burst != burst {
		b.lim.SetBurstAt(now, burst)
		b.burst = burst
	}
	return b.lim
}

// rateLimit is the pipeline's rate-limit step, after a rule matched.
func (s *Server) rateLimit(agent string, rule *policy.Rule) *Error {
	if rule.Action == policy.ActionDeny {
		return nil
	}
	ok, wait := s.guard.limits.take(agent, rule, time.Now())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	rl := rule.RateLimit
	e := newError(http.StatusTooManyRequests, CodeRateLimited,
		"rule "+rule.Name+" allows "+strconv.Itoa(rl.Count)+" requests per "+rl.Per.String()+" for agent "+agent,
		"retry after "+strconv.Itoa(secs)+"s, or raise the rule's rate_limit/burst")
	e.RetryAfter = secs
	return e
}
