package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/usage"
)

// TestUsageStoreNoOvershoot: 60 concurrent reservations spread over three
// replicas against a budget that fits 10: exactly 10 are granted, the rest
// refused with the budget's figures; commits count, releases free.
func TestUsageStoreNoOvershoot(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 3, Options{})
	ctx := context.Background()
	now := time.Now()
	claim := func(amount int64) []usage.Claim {
		return []usage.Claim{{Budget: "team", Buckets: []string{"team/2026-12-01"}, Limit: 1000, Amount: amount}}
	}
	var granted, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		u := stores[i%3].Usage(nil)
		wg.Go(func() {
			err := u.Reserve(ctx, usage.Reservation{ID: fmt.Sprint("r", i), Claims: claim(100), Now: now, Expires: now.Add(time.Minute)})
			var over *usage.OverLimitError
			switch {
			case err == nil:
				granted.Add(1)
			case errors.As(err, &over):
				refused.Add(1)
				if over.Used+over.Reserved+100 <= 1000 {
					t.Errorf("refused with room: %+v", over)
				}
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 10 || refused.Load() != 50 {
		t.Fatalf("granted %d refused %d, want 10 and 50", granted.Load(), refused.Load())
	}
	u := stores[0].Usage(usage.NewMemStore())
	if used, reserved, err := u.Window(ctx, "team", []string{"team/2026-12-01"}); used != 0 || reserved != 1000 || err != nil {
		t.Fatalf("Window: %d %d %v", used, reserved, err)
	}
	var ids []string
	for i := range 60 {
		ids = append(ids, fmt.Sprint("r", i))
	}
	for _, id := range ids {
		if err := u.Commit(ctx, id, []usage.Charge{{Bucket: "team/2026-12-01", Amount: 30}}, usage.Record{Time: now}); err != nil {
			t.Fatal(err)
		}
	}
	// 60 commits of 30 (also for ids never granted: usage is what was
	// really spent), no reservation left.
	if used, reserved, _ := u.Window(ctx, "team", []string{"team/2026-12-01"}); used != 1800 || reserved != 0 {
		t.Fatalf("after commits: used %d reserved %d, want 1800 and 0", used, reserved)
	}
	if err := u.Reserve(ctx, usage.Reservation{ID: "late", Claims: claim(1), Now: now}); err == nil {
		t.Fatal("reserved past the limit")
	}
	// An expired reservation stops counting.
	if err := u.Reserve(ctx, usage.Reservation{ID: "e1", Claims: []usage.Claim{{Budget: "b2", Limit: 10, Amount: 10}}, Now: now, Expires: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := u.Reserve(ctx, usage.Reservation{ID: "e2", Claims: []usage.Claim{{Budget: "b2", Limit: 10, Amount: 10}}, Now: now.Add(2 * time.Second)}); err != nil {
		t.Fatalf("after the first reservation expired: %v", err)
	}
	if err := u.Reserve(ctx, usage.Reservation{ID: "e2", Claims: []usage.Claim{{Budget: "b3", Limit: 10, Amount: 1}}, Now: now}); !errors.Is(err, usage.ErrDuplicateReservation) {
		t.Fatalf("duplicate id: %v", err)
	}
	r.kill()
	if err := u.Reserve(ctx, usage.Reservation{ID: "down", Claims: claim(1), Now: now}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down, fail_closed: %v", err)
	}
	open := stores[0].Usage(nil)
	open.s.opts.BudgetMode = FailOpen
	if err := open.Reserve(ctx, usage.Reservation{ID: "down2", Claims: claim(1), Now: now}); err != nil {
		t.Fatalf("redis down, fail_open: %v", err)
	}
}
