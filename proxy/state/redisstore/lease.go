package redisstore

import (
	"context"
	"sync"
	"time"
)

// Rate-limit token leasing: for a generous bucket (burst >= 2×leaseDiv),
// a replica takes leaseChunk tokens from the shared bucket in one script
// call and hands them out locally, so a hot rule costs one Redis round
// trip per chunk instead of per request. The fleet never admits more than
// the bucket allows (leased tokens are taken from it first); a replica
// may refuse early by at most the chunks other replicas hold, which is
// bounded to 1/leaseDiv of the burst per replica and expires after
// leaseTTL (unused leased tokens are dropped, never returned: stricter,
// never looser). When a chunk is refused the request asks for its single
// token, so the last tokens and Retry-After stay exact. Small buckets
// (the 60/m-burst-5 kind) are never leased: every request is Redis's
// decision.
const (
	leaseMax = 100         // tokens per chunk at most
	leaseDiv = 20          // a chunk is at most burst/leaseDiv tokens
	leaseTTL = time.Second // leased tokens unused after this are dropped
	leaseCap = 100_000     // leased buckets kept (keys come from configuration)
)

// leaseChunk is how many tokens one lease takes for burst (1: no lease).
func leaseChunk(burst int) int {
	return max(1, min(leaseMax, burst/leaseDiv))
}

// leases are one replica's leased tokens by bucket key.
type leases struct {
	mu sync.Mutex // guards m
	m  map[string]*lease
}

// lease is the local part of one bucket; mu is held while a chunk is
// fetched, so one fetch serves every waiting request.
type lease struct {
	mu   sync.Mutex // guards n, exp, skip
	n    int
	exp  time.Time
	skip time.Time // a fetch failed: no leasing (no waiting in line on a sick Redis) until then
	rate float64   // the bucket's settings the tokens were leased under
	b    int
}

func (l *leases) get(key string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= leaseCap {
		l.m = map[string]*lease{}
	}
	e := l.m[key]
	if e == nil {
		e = &lease{}
		l.m[key] = e
	}
	return e
}

// allowLeased is Allow for generous buckets (chunk > 1).
func (a *Adapter) allowLeased(ctx context.Context, key string, rate float64, burst, chunk int) (bool, time.Duration, error) {
	e := a.leases.get(key)
	e.mu.Lock()
	now := time.Now()
	if now.Before(e.skip) {
		e.mu.Unlock()
		return a.s.Allow(ctx, key, rate, burst) // batched, with the fail mode
	}
	defer e.mu.Unlock()
	if e.n > 0 && now.Before(e.exp) && e.rate == rate && e.b == burst {
		e.n--
		return true, 0, nil
	}
	e.n = 0
	// chunk tokens at once: GCRA with interval chunk×T and burst
	// floor(burst/chunk) moves the shared TAT by chunk×T, as chunk single
	// requests would, and never past what burst allows.
	ok, _, err := a.s.Allow(ctx, key, rate/float64(chunk), burst/chunk)
	if err == nil && ok {
		e.n, e.exp, e.rate, e.b = chunk-1, now.Add(leaseTTL), rate, burst
		return true, 0, nil
	}
	if err != nil {
		e.skip = now.Add(leaseTTL)
		return ok, 0, err
	}
	return a.s.Allow(ctx, key, rate, burst) // the last tokens, one by one, with an exact Retry-After
}
