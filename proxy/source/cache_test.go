package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// funcSource is a Source from a function, counting calls.
type funcSource struct {
	calls atomic.Int64
	fn    func(ctx context.Context, key string) (Value, error)
}

func (s *funcSource) Fetch(ctx context.Context, key string) (Value, error) {
	s.calls.Add(1)
	return s.fn(ctx, key)
}

func val(s string) Value { return Value{Secret: vault.NewSecret([]byte(s)), Kind: vault.KindStatic} }

// TestCacheSingleFlight: 100 concurrent first uses of a key make one fetch
// and all get its value.
func TestCacheSingleFlight(t *testing.T) {
	release := make(chan struct{})
	src := &funcSource{fn: func(ctx context.Context, key string) (Value, error) {
		<-release
		return val("sf-value-" + key), nil
	}}
	o := newObserved(t)
	c := NewCache("sf", src, CacheOptions{}, o.m, o.log)
	defer c.Close()
	const n = 100
	var wg sync.WaitGroup
	var started sync.WaitGroup
	errs := make(chan error, n)
	started.Add(n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			v, err := c.Fetch(context.Background(), "k")
			if err == nil && string(v.Secret.Bytes()) != "sf-value-k" {
				err = fmt.Errorf("got %q", v.Secret.Bytes())
			}
			errs <- err
		}()
	}
	started.Wait()
	waitFor(t, 2*time.Second, func() error {
		if src.calls.Load() == 0 {
			return errors.New("fetch not started")
		}
		return nil
	})
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("%d fetches for 100 concurrent first uses, want 1", got)
	}
	if !strings.Contains(o.metrics(), `airlock_source_fetches_total{result="ok",source="sf"} 1`) {
		t.Fatalf("metrics:\n%s", o.metrics())
	}
}

// TestCacheWaiterContext: a caller whose context ends stops waiting; the
// shared fetch goes on for the others.
func TestCacheWaiterContext(t *testing.T) {
	release := make(chan struct{})
	src := &funcSource{fn: func(ctx context.Context, key string) (Value, error) { <-release; return val("late-value"), nil }}
	c := NewCache("w", src, CacheOptions{}, nil, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Fetch(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(release)
	if v, err := c.Fetch(context.Background(), "k"); err != nil || string(v.Secret.Bytes()) != "late-value" {
		t.Fatalf("%q %v", v.Secret.Bytes(), err)
	}
}

// TestCacheRefreshAhead: near the end of the TTL the old value is served
// at once and a background fetch brings the new one.
func TestCacheRefreshAhead(t *testing.T) {
	clk := newClock()
	var n atomic.Int64
	src := &funcSource{fn: func(context.Context, string) (Value, error) {
		return val(fmt.Sprintf("ahead-%d", n.Add(1))), nil
	}}
	c := NewCache("ra", src, CacheOptions{TTL: 10 * time.Second, RefreshAhead: 2 * time.Second, Now: clk.Now}, nil, nil)
	defer c.Close()
	ctx := context.Background()
	get := func() string {
		v, err := c.Fetch(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return string(v.Secret.Bytes())
	}
	if get() != "ahead-1" {
		t.Fatal("first")
	}
	clk.Advance(7 * time.Second)
	if got := get(); got != "ahead-1" || src.calls.Load() != 1 {
		t.Fatalf("before the refresh window: %q, %d fetches", got, src.calls.Load())
	}
	clk.Advance(1500 * time.Millisecond) // inside the last 2 s
	if got := get(); got != "ahead-1" {
		t.Fatalf("the refresh must not block: %q", got)
	}
	var got string
	waitFor(t, 2*time.Second, func() error {
		if got = get(); got == "ahead-1" {
			return fmt.Errorf("still %q", got)
		}
		return nil
	})
	if got != "ahead-2" || src.calls.Load() != 2 {
		t.Fatalf("after the refresh: %q and %d fetches, want ahead-2 and 2", got, src.calls.Load())
	}
}

// TestCacheStaleRules: not-found and expiry are never papered over by the
// stale window; a per-credential TTL overrides the source's.
func TestCacheStaleRules(t *testing.T) {
	clk := newClock()
	type box struct{ err error }
	var failing atomic.Pointer[box]
	fail := struct{ Store func(error) }{func(err error) { failing.Store(&box{err}) }}
	fail.Store(nil)
	src := &funcSource{fn: func(context.Context, string) (Value, error) {
		if b := failing.Load(); b.err != nil {
			return Value{}, b.err
		}
		return val("stale-rule-value"), nil
	}}
	c := NewCache("st", src, CacheOptions{TTL: 10 * time.Second, StaleFor: time.Hour, Now: clk.Now}, nil, nil)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Fetch(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	fail.Store(fmt.Errorf("gone: %w", ErrNotFound))
	clk.Advance(11 * time.Second)
	if _, err := c.Fetch(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted at the source but served stale: %v", err)
	}
	fail.Store(fmt.Errorf("boom: %w", ErrUnavailable))
	if v, err := c.Fetch(ctx, "k"); err != nil || v.Secret.IsZero() {
		t.Fatalf("unavailable inside the window: %v", err)
	}
	// Per-credential TTL: 1 s instead of 10 s.
	fail.Store(nil)
	before := src.calls.Load()
	if _, err := c.FetchTTL(ctx, "short", time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(1100 * time.Millisecond)
	if _, err := c.FetchTTL(ctx, "short", time.Second); err != nil {
		t.Fatal(err)
	}
	if got := src.calls.Load() - before; got != 2 {
		t.Fatalf("per-credential TTL 1s: %d fetches in 1.1 s, want 2", got)
	}
}

// TestCacheBounded: at MaxEntries the oldest entry goes.
func TestCacheBounded(t *testing.T) {
	src := &funcSource{fn: func(_ context.Context, k string) (Value, error) { return val("bounded-" + k), nil }}
	c := NewCache("b", src, CacheOptions{MaxEntries: 3}, nil, nil)
	defer c.Close()
	for i := range 10 {
		if _, err := c.Fetch(context.Background(), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
}

// BenchmarkCacheHit is the cost a cached credential adds to a request.
func BenchmarkCacheHit(b *testing.B) {
	src := &funcSource{fn: func(context.Context, string) (Value, error) { return val("bench-value"), nil }}
	c := NewCache("bench", src, CacheOptions{TTL: time.Hour}, nil, nil)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Fetch(ctx, "k"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Fetch(ctx, "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
