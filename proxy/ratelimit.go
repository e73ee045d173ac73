package proxy

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"golang.org/x/time/rate"

	"github.com/airlock/airlock/policy"
)

// Rate limits: one token bucket per (agent, rule name), kept in the state
// store (package state). Buckets outlive policy reloads: a rule whose rate
// changed gets its bucket's limit and burst updated in place, so a reload
// never hands every agent a fresh burst.

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

// bucketKey names the bucket of agent under rule in the state store.
func bucketKey(agent, rule string) string { return "ratelimit\x00" + agent + "\x00" + rule }

// rateLimit is the pipeline's rate-limit step, after a rule matched. A
// state store that cannot answer fails closed (RATE_LIMITED, retry 1 s).
func (s *Server) rateLimit(agent string, rule *policy.Rule) *Error {
	if rule.Action == policy.ActionDeny || rule.RateLimit == nil || rule.RateLimit.Count <= 0 {
		return nil
	}
	limit, burst := limitOf(rule.RateLimit)
	ok, wait, err := s.state.Allow(context.Background(), bucketKey(agent, rule.Name), limit, burst)
	if ok && err == nil {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	if err != nil {
		secs = 1
	}
	rl := rule.RateLimit
	e := newError(http.StatusTooManyRequests, CodeRateLimited,
		"rule "+rule.Name+" allows "+strconv.Itoa(rl.Count)+" requests per "+rl.Per.String()+" for agent "+agent,
		"retry after "+strconv.Itoa(secs)+"s, or raise the rule's rate_limit/burst")
	e.RetryAfter = secs
	return e
}
