package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGCRAAcrossReplicas hammers one 100/m bucket from 3 stores (own
// pools) × 10 goroutines for 3 s: the fleet admits exactly burst + one per
// emission interval, as one proxy would.
func TestGCRAAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	for name, noBatch := range map[string]bool{"batched": false, "direct": true} {
		t.Run(name, func(t *testing.T) {
			stores := newStores(t, r, 3, Options{NoBatch: noBatch})
			const rate, burst = 100.0 / 60, 10
			interval := time.Duration(float64(time.Second) / rate)
			key := "bot/hammer-" + name
			var admitted atomic.Int64
			var wrongRetry atomic.Int64
			start := time.Now()
			stop := start.Add(3 * time.Second)
			var wg sync.WaitGroup
			for _, s := range stores {
				for range 10 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for time.Now().Before(stop) {
							ok, retry, err := s.Allow(context.Background(), key, rate, burst)
							if err != nil {
								t.Error(err)
								return
							}
							if ok {
								admitted.Add(1)
							} else if retry <= 0 || retry > interval {
								wrongRetry.Add(1)
							}
						}
					}()
				}
			}
			wg.Wait()
			elapsed := time.Since(start)
			want := int64(burst) + int64(elapsed/interval)
			got := admitted.Load()
			t.Logf("admitted %d in %v (burst %d + one per %v = %d)", got, elapsed.Round(time.Millisecond), burst, interval, want)
			if got > want || got < want-1 {
				t.Errorf("admitted %d, want %d (or one less: the last interval may not have ended)", got, want)
			}
			if n := wrongRetry.Load(); n > 0 {
				t.Errorf("%d refusals had a Retry-After outside (0, %v]", n, interval)
			}
		})
	}
}

// TestGCRARetryAfter: the Retry-After one replica gives is when another
// replica admits.
func TestGCRARetryAfter(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 3, Options{})
	ctx := context.Background()
	const rate = 100.0 / 60 // one per 600ms
	if ok, _, err := s[0].Allow(ctx, "bot/retry", rate, 1); !ok || err != nil {
		t.Fatalf("first request: ok=%v err=%v", ok, err)
	}
	ok, retry, err := s[1].Allow(ctx, "bot/retry", rate, 1)
	if ok || err != nil {
		t.Fatalf("second request at once: ok=%v err=%v, want refused", ok, err)
	}
	if retry < 500*time.Millisecond || retry > 600*time.Millisecond {
		t.Fatalf("retry-after %v, want just under 600ms", retry)
	}
	if ok, _, _ := s[2].Allow(ctx, "bot/retry", rate, 1); ok {
		t.Fatal("third replica admitted before retry-after")
	}
	time.Sleep(retry + 5*time.Millisecond)
	if ok, _, err := s[2].Allow(ctx, "bot/retry", rate, 1); !ok || err != nil {
		t.Fatalf("after retry-after: ok=%v err=%v, want admitted", ok, err)
	}
	// Other buckets are independent.
	if ok, _, _ := s[0].Allow(ctx, "other/retry", rate, 1); !ok {
		t.Fatal("another agent's bucket was refused")
	}
}
