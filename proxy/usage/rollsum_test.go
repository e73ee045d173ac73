package usage

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRollingSumCache: with the cached sums of long windows, Window and
// Reserve see exactly the committed total, whatever bucket a commit lands
// in (a late commit to an older bucket included) and however the window
// slides; a prune drops the cache.
func TestRollingSumCache(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	budgets := []Budget{{Name: "r", Rule: "x", Tokens: 1 << 40, Window: "24h"}, {Name: "r2@team", Rule: "x", Tokens: 1 << 40, Window: "24h"}}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for step := range 3000 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		b := &budgets[rng.IntN(2)]
		buckets, _ := b.window(now)
		switch rng.IntN(4) {
		case 0, 1: // commit to the current bucket, or a late one to an older bucket
			k := buckets[len(buckets)-1]
			if rng.IntN(3) == 0 {
				k = buckets[rng.IntN(len(buckets))]
			}
			_ = s.Commit(ctx, "", []Charge{{Bucket: k, Amount: int64(rng.IntN(100) + 1)}}, Record{Time: now})
		case 2:
			if rng.IntN(50) == 0 {
				s.mu.Lock()
				s.prune(now, KeepBuckets, KeepRows)
				s.mu.Unlock()
			}
		}
		var want int64
		s.mu.Lock()
		for _, k := range buckets {
			want += s.buckets[k]
		}
		s.mu.Unlock()
		got, _, _ := s.Window(ctx, b.Name, buckets)
		if got != want {
			t.Fatalf("step %d: Window %d, buckets hold %d", step, got, want)
		}
		err := s.Reserve(ctx, Reservation{ID: "probe", Claims: []Claim{{Budget: b.Name, Buckets: buckets, Limit: want, Amount: 1}}, Now: now})
		if err == nil {
			t.Fatalf("step %d: reserved past the limit (used %d)", step, want)
		}
		if err := s.Reserve(ctx, Reservation{ID: "probe", Claims: []Claim{{Budget: b.Name, Buckets: buckets, Limit: want + 1, Amount: 1}}, Now: now}); err != nil {
			t.Fatalf("step %d: refused what fits: %v", step, err)
		}
		_ = s.Release(ctx, "probe")
	}
}
