package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for Cache.now.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("timed out: %v", err)
			return
		}
		runtime.Gosched()
	}
}

// lookups counts OnLookup calls.
type lookups struct{ hits, misses atomic.Int64 }

func (l *lookups) record(hit bool) {
	if hit {
		l.hits.Add(1)
	} else {
		l.misses.Add(1)
	}
}

func TestCacheHitAndNormalisation(t *testing.T) {
	c := NewCache(testCA(t), 10)
	var l lookups
	c.OnLookup = l.record
	first, err := c.Get("Example.COM:443")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"example.com", "EXAMPLE.com", "example.com.", "example.com:8443"} {
		got, err := c.Get(host)
		if err != nil {
			t.Fatal(err)
		}
		if got != first {
			t.Errorf("Get(%q) minted a new leaf, want the cached one", host)
		}
	}
	if c.Mints() != 1 || c.Len() != 1 || l.misses.Load() != 1 || l.hits.Load() != 4 {
		t.Fatalf("mints=%d len=%d misses=%d hits=%d, want 1 1 1 4", c.Mints(), c.Len(), l.misses.Load(), l.hits.Load())
	}
}

func TestCacheEviction(t *testing.T) {
	const max = 3
	c := NewCache(testCA(t), max)
	get := func(host string) {
		t.Helper()
		if _, err := c.Get(host); err != nil {
			t.Fatal(err)
		}
	}
	for i := range max {
		get(fmt.Sprintf("h%d.example", i))
	}
	get("h0.example") // h0 becomes most recent; h1 is now the oldest
	get("h3.example") // evicts h1
	if c.Len() != max {
		t.Fatalf("Len = %d, want %d", c.Len(), max)
	}
	if c.Mints() != 4 {
		t.Fatalf("Mints = %d, want 4", c.Mints())
	}
	for _, host := range []string{"h0.example", "h2.example", "h3.example"} {
		get(host)
	}
	if c.Mints() != 4 {
		t.Fatalf("survivors were re-minted: Mints = %d, want 4", c.Mints())
	}
	get("h1.example")
	if c.Mints() != 5 || c.Len() != max {
		t.Fatalf("evicted host: Mints = %d Len = %d, want 5 %d", c.Mints(), c.Len(), max)
	}
}

func TestCacheDefaultMax(t *testing.T) {
	if c := NewCache(testCA(t), 0); c.max != DefaultMaxEntries {
		t.Fatalf("max = %d, want %d", c.max, DefaultMaxEntries)
	}
}

func TestCacheSingleFlight(t *testing.T) {
	c := NewCache(testCA(t), 10)
	var l lookups
	c.OnLookup = l.record
	const n = 100
	// Hold the first mint until the other n-1 Gets are waiting on it, so
	// the overlap does not depend on scheduling.
	c.mint = func(host string, now time.Time) (*tls.Certificate, error) {
		waitFor(t, 5*time.Second, func() error {
			if w := c.waits.Load(); w != n-1 {
				return fmt.Errorf("%d of %d Gets waiting", w, n-1)
			}
			return nil
		})
		return c.ca.Mint(host, now)
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		certs = make([]any, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			certs[i], errs[i] = c.Get("Concurrent.example:443")
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if certs[i] != certs[0] {
			t.Fatalf("Get %d returned a different leaf", i)
		}
	}
	if c.Mints() != 1 || l.misses.Load() != 1 || l.hits.Load() != n-1 {
		t.Fatalf("mints=%d misses=%d hits=%d, want 1 1 %d", c.Mints(), l.misses.Load(), l.hits.Load(), n-1)
	}
}

func TestCacheConcurrentManyHosts(t *testing.T) {
	c := NewCache(testCA(t), 4)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Get(fmt.Sprintf("h%d.example", i%8)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c.Len() > 4 {
		t.Fatalf("Len = %d exceeds max 4", c.Len())
	}
}

func TestCacheRenewal(t *testing.T) {
	t0 := time.Now()
	clock := &fakeClock{t: t0}
	c := NewCache(testCA(t), 10)
	c.now = clock.now
	first, err := c.Get("renew.example")
	if err != nil {
		t.Fatal(err)
	}
	expiry := first.Leaf.NotAfter
	cases := []struct {
		name      string
		at        time.Time
		wantMints uint64
	}{
		{"fresh", t0.Add(time.Hour), 1},
		{"two hours before expiry", expiry.Add(-2 * time.Hour), 1},
		{"59 minutes before expiry", expiry.Add(-59 * time.Minute), 2},
		{"renewed leaf is cached", expiry.Add(-30 * time.Minute), 2},
	}
	for _, tc := range cases {
		clock.set(tc.at)
		got, err := c.Get("renew.example")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.Mints() != tc.wantMints {
			t.Fatalf("%s: Mints = %d, want %d", tc.name, c.Mints(), tc.wantMints)
		}
		if !got.Leaf.NotAfter.After(tc.at.Add(RenewBefore)) {
			t.Fatalf("%s: served a leaf expiring at %v", tc.name, got.Leaf.NotAfter)
		}
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after renewal, want 1", c.Len())
	}
}

func TestCacheErrors(t *testing.T) {
	ca, err := LoadCA(readFixture(t, "ca.pem"), readFixture(t, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: ca.NotAfter().Add(time.Hour)}
	c := NewCache(ca, 10)
	c.now = clock.now
	if _, err := c.Get("bad host"); !errors.Is(err, ErrBadHost) {
		t.Fatalf("bad host: %v, want ErrBadHost", err)
	}
	if _, err := c.Get("example.com"); !errors.Is(err, ErrCAExpired) {
		t.Fatalf("expired CA: %v, want ErrCAExpired", err)
	}
	if c.Len() != 0 {
		t.Fatalf("failed mint was cached: Len = %d", c.Len())
	}
	clock.set(fixtureNow)
	if _, err := c.Get("example.com"); err != nil {
		t.Fatalf("after a failed mint: %v", err)
	}
}
