package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock/airlock/proxy/state"
)

// TestAdapterLimiter: two replicas' adapters share one bucket; Redis down,
// fail_open admits without an error (the pipeline would refuse on one)
// and fail_closed refuses with an error wrapping both sentinels.
func TestAdapterLimiter(t *testing.T) {
	r := startRedis(t)
	open := newStores(t, r, 2, Options{})
	closed := newStores(t, r, 1, Options{RateLimitMode: FailClosed})[0].State()
	a, b := open[0].State(), open[1].State()
	ctx := context.Background()
	for i, ad := range []*Adapter{a, b} {
		if ok, _, err := ad.Allow(ctx, "bot/rule", rate.Limit(0.1), 2); !ok || err != nil {
			t.Fatalf("request %d: %v %v", i, ok, err)
		}
	}
	ok, wait, err := a.Allow(ctx, "bot/rule", rate.Limit(0.1), 2)
	if ok || err != nil || wait < 9*time.Second || wait > 10*time.Second {
		t.Fatalf("third request: ok %v wait %v err %v, want refused with ~10s", ok, wait, err)
	}
	if ok, _, _ := a.Allow(ctx, "inf", rate.Inf, 1); !ok {
		t.Error("rate.Inf refused")
	}

	r.kill()
	if ok, _, err := a.Allow(ctx, "bot/rule", rate.Limit(0.1), 2); !ok || err != nil {
		t.Errorf("redis down, fail_open: %v %v, want admitted without error", ok, err)
	}
	ok, _, err = closed.Allow(ctx, "bot/rule", rate.Limit(0.1), 2)
	if ok || !errors.Is(err, state.ErrUnavailable) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("redis down, fail_closed: %v %v", ok, err)
	}
	if healthy, _ := a.Healthy(ctx); healthy {
		t.Error("Healthy with redis down")
	}
}

// TestAdapterTokens: the state.Tokens view keeps the refresh token the
// fleet holds; DropToken drops only the value it names.
func TestAdapterTokens(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 1, Options{})[0]
	a, ctx := s.State(), context.Background()
	if _, err := s.StoreToken(ctx, "k", Token{RefreshToken: "rt-1"}); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := a.PutToken(ctx, "k", state.Token{Value: "at-1", Expiry: exp}); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := a.Token(ctx, "k"); !ok || err != nil || got.Value != "at-1" || !got.Expiry.Equal(exp) {
		t.Fatalf("Token: %v %v %v", got.Expiry, ok, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.DropToken(ctx, "k", "at-other"))
	if _, ok, _ := a.Token(ctx, "k"); !ok {
		t.Fatal("DropToken of another value dropped the token")
	}
	must(a.DropToken(ctx, "k", "at-1"))
	if _, ok, _ := a.Token(ctx, "k"); ok {
		t.Fatal("DropToken kept the token")
	}
	if cur, _ := s.CachedToken(ctx, "k"); cur.RefreshToken != "rt-1" {
		t.Fatal("the refresh token was lost")
	}
	unlock, ok, err := a.LockRefresh(ctx, "k", time.Minute)
	if !ok || err != nil {
		t.Fatalf("LockRefresh: %v %v", ok, err)
	}
	if _, ok, _ := a.LockRefresh(ctx, "k", time.Minute); ok {
		t.Fatal("second LockRefresh got the lock too")
	}
	unlock()
	if _, ok, _ := a.LockRefresh(ctx, "k", time.Minute); !ok {
		t.Fatal("lock not released")
	}
}

// TestAdapterLease: 3 replicas × 10 concurrent callers on an expired
// token: one refresh, given the fleet's refresh token, and everyone gets
// its result.
func TestAdapterLease(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 3, Options{})
	ctx := context.Background()
	if _, err := stores[0].StoreToken(ctx, "cred", Token{AccessToken: "at-old", RefreshToken: "rt-7", Expiry: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var wg sync.WaitGroup
	for _, s := range stores {
		a := s.State()
		for range 10 {
			wg.Go(func() {
				got, err := a.Lease(ctx, "cred", time.Second, func(_ context.Context, cur state.LeasedToken) (state.LeasedToken, error) {
					calls.Add(1)
					if cur.Refresh != "rt-7" {
						t.Errorf("refresh given %q, want the fleet's rt-7", cur.Refresh)
					}
					return state.LeasedToken{Access: "at-new", Refresh: "rt-8", Expiry: time.Now().Add(time.Hour)}, nil
				})
				if err != nil || got.Access != "at-new" || got.Refresh != "rt-8" {
					t.Errorf("Lease: %v %v", got, err)
				}
			})
		}
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	r.kill()
	if _, err := stores[0].State().Lease(ctx, "cred", 2*time.Hour, nil); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("redis down: %v, want state.ErrUnavailable", err)
	}
}

// TestAdapterBudgets: reservations across replicas never pass the limit;
// commit and release settle them.
func TestAdapterBudgets(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 2, Options{})
	a, b, ctx := stores[0].State(), stores[1].State(), context.Background()
	id1, err := a.Reserve(ctx, "team/day", 6, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, "team/day", 5, 10, time.Minute); !errors.Is(err, state.ErrBudgetExceeded) {
		t.Fatalf("over the limit on the other replica: %v", err)
	}
	if err := b.Commit(ctx, "team/day", id1, 4); err != nil {
		t.Fatal(err)
	}
	id2, err := b.Reserve(ctx, "team/day", 5, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if spent, reserved, err := a.Spent(ctx, "team/day"); spent != 4 || reserved != 5 || err != nil {
		t.Fatalf("Spent %d reserved %d %v, want 4 and 5", spent, reserved, err)
	}
	if err := a.Release(ctx, "team/day", id2); err != nil {
		t.Fatal(err)
	}
	if _, reserved, _ := a.Spent(ctx, "team/day"); reserved != 0 {
		t.Fatalf("reserved %d after release", reserved)
	}
}

// TestAdapterFleet: members are listed by id after their heartbeat.
func TestAdapterFleet(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 2, Options{})
	ctx := context.Background()
	for _, s := range stores {
		if err := s.Beat(ctx, Replica{Addr: "127.0.0.1:7600"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := stores[0].State().Members(ctx)
	if err != nil || len(ms) != 2 || ms[0].ID != "replica-0" || ms[1].ID != "replica-1" || ms[0].Addr != "127.0.0.1:7600" {
		t.Fatalf("Members: %+v %v", ms, err)
	}
	if ok, detail := stores[1].State().Healthy(ctx); !ok || detail.(Health).Replica != "replica-1" {
		t.Fatalf("Healthy: %v %+v", ok, detail)
	}
}

// TestAdapterLeasedExact: a generous bucket is leased in chunks, yet two
// replicas together admit exactly its burst, no more (the leased tokens
// come out of the shared bucket) and no fewer (a refused chunk falls back
// to single tokens; each replica spends what it leased).
func TestAdapterLeasedExact(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 2, Options{})
	a, b := stores[0].State(), stores[1].State()
	const burst = 1000
	if c := leaseChunk(burst); c != 50 {
		t.Fatalf("chunk %d, want 50", c)
	}
	ctx := context.Background()
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for _, ad := range []*Adapter{a, b, a, b} {
		wg.Go(func() {
			for range 400 {
				if ok, _, err := ad.Allow(ctx, "hot", rate.Limit(0.001), burst); err != nil {
					t.Error(err)
					return
				} else if ok {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != burst {
		t.Fatalf("admitted %d of 1600 asked, want exactly the burst %d", n, burst)
	}
	ok, wait, _ := a.Allow(ctx, "hot", rate.Limit(0.001), burst)
	if ok || wait < 900*time.Second {
		t.Fatalf("after the burst: ok %v Retry-After %v, want refused ~1000s", ok, wait)
	}
	if c := leaseChunk(5); c != 1 {
		t.Fatalf("small bucket chunk %d, want 1 (never leased)", c)
	}
}
