package source

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// Log field names (constant, so log queries stay stable).
const (
	LogSource   = "source"
	LogKey      = "key"
	LogResult   = "result"
	LogDuration = "duration"
	LogError    = "error"
	LogAge      = "age"
)

// Cache defaults.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultFetchTimeout = 30 * time.Second
	DefaultMaxEntries   = 4096
)

// CacheOptions configure a [Cache]. Zero values take the defaults.
type CacheOptions struct {
	TTL          time.Duration // how long a fetched value is used; default DefaultTTL
	RefreshAhead time.Duration // refresh in the background this long before the TTL ends; default TTL/5
	StaleFor     time.Duration // after a failed refresh, serve the old value this long; default 0: fail closed
	FetchTimeout time.Duration // one fetch, shared by all waiters; default DefaultFetchTimeout
	MaxEntries   int           // bound on cached keys; default DefaultMaxEntries
	Now          func() time.Time
}

// Cache wraps a [Source]: it is itself a Source, safe for concurrent use.
// Concurrent first uses of a key share one fetch; a value is used for its
// TTL (never past its own ExpiresAt), refreshed in the background when the
// TTL nears its end, and after a failed refresh served for at most StaleFor
// before the error (as an [*Error]) reaches the caller.
type Cache struct {
	name    string
	src     Source
	opts    CacheOptions
	metrics *Metrics
	log     *zap.Logger

	group  singleflight.Group
	base   context.Context // cancelled by Close; fetches run under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // background refreshes

	// mu guards entries and status.
	mu      sync.Mutex
	entries map[string]*entry
	status  map[string]KeyStatus
}

type entry struct {
	val     Value
	fetched time.Time
	until   time.Time // end of the TTL (or the value's expiry, if sooner)
	ttl     time.Duration
}

// KeyStatus is the last fetch of one key: for `vault list` and doctor.
type KeyStatus struct {
	LastFetch time.Time `json:"last_fetch"` // last attempt
	LastOK    time.Time `json:"last_ok,omitzero"`
	Result    string    `json:"result"` // a Result* constant
}

// NewCache wraps src, named name in errors, logs and metrics. m and log may
// be nil.
func NewCache(name string, src Source, opts CacheOptions, m *Metrics, log *zap.Logger) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.RefreshAhead <= 0 || opts.RefreshAhead >= opts.TTL {
		opts.RefreshAhead = opts.TTL / 5
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	if log == nil {
		log = zap.NewNop()
	}
	base, cancel := context.WithCancel(context.Background())
	c := &Cache{name: name, src: src, opts: opts, metrics: m, log: log, base: base, cancel: cancel,
		entries: map[string]*entry{}, status: map[string]KeyStatus{}}
	if w, ok := src.(Watcher); ok {
		w.OnChange(c.invalidate)
	}
	return c
}

// Name is the source name.
func (c *Cache) Name() string { return c.name }

// Source is the wrapped source.
func (c *Cache) Source() Source { return c.src }

// Close stops background refreshes and waits for them.
func (c *Cache) Close() {
	c.cancel()
	c.wg.Wait()
	if cl, ok := c.src.(interface{ Close() error }); ok {
		_ = cl.Close()
	}
}

// Fetch returns the value for key with the source's TTL.
func (c *Cache) Fetch(ctx context.Context, key string) (Value, error) { return c.FetchTTL(ctx, key, 0) }

// FetchTTL is Fetch with a per-credential TTL (0: the source's).
func (c *Cache) FetchTTL(ctx context.Context, key string, ttl time.Duration) (Value, error) {
	if ttl <= 0 {
		ttl = c.opts.TTL
	}
	now := c.opts.Now()
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && now.Before(e.until) {
		if !now.Before(e.until.Add(-c.refreshAhead(e.ttl))) {
			c.refreshAsync(key, ttl, e.fetched)
		}
		return c.serve(e, now), nil
	}
	v, err := c.fetchShared(ctx, key, ttl, e)
	if err == nil {
		c.metrics.age.WithLabelValues(c.name).Set(0)
		return v, nil
	}
	if e != nil && c.mayServeStale(e, err, now) {
		c.metrics.stale.WithLabelValues(c.name).Inc()
		c.log.Warn("credential source failed, serving the cached value inside the stale window",
			zap.String(LogSource, c.name), zap.String(LogKey, key), zap.Duration(LogAge, now.Sub(e.fetched)), zap.Error(err))
		return c.serve(e, now), nil
	}
	return Value{}, err
}

func (c *Cache) refreshAhead(ttl time.Duration) time.Duration {
	if ttl == c.opts.TTL {
		return c.opts.RefreshAhead
	}
	return ttl / 5
}

// mayServeStale: only when the source failed to answer (or refused us),
// never after an authoritative not-found or expiry, never past the value's
// own expiry, and only for StaleFor after the TTL ended.
func (c *Cache) mayServeStale(e *entry, err error, now time.Time) bool {
	if c.opts.StaleFor <= 0 || errors.Is(err, ErrNotFound) || errors.Is(err, ErrExpired) {
		return false
	}
	if !e.val.ExpiresAt.IsZero() && !now.Before(e.val.ExpiresAt) {
		return false
	}
	return now.Before(e.until.Add(c.opts.StaleFor))
}

func (c *Cache) serve(e *entry, now time.Time) Value {
	c.metrics.age.WithLabelValues(c.name).Set(now.Sub(e.fetched).Seconds())
	return e.val
}

// fetchShared runs one fetch per key at a time; callers wait for it or
// for their own ctx. A caller that arrives just after a flight landed
// (it saw the entry seen, or none) takes the fresh entry instead of
// fetching again.
func (c *Cache) fetchShared(ctx context.Context, key string, ttl time.Duration, seen *entry) (Value, error) {
	ch := c.group.DoChan(key, func() (any, error) {
		c.mu.Lock()
		cur := c.entries[key]
		c.mu.Unlock()
		if cur != nil && cur != seen && c.opts.Now().Before(cur.until) {
			return cur.val, nil
		}
		return c.fetch(key, ttl)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Value{}, r.Err
		}
		return r.Val.(Value), nil
	case <-ctx.Done():
		return Value{}, &Error{Source: c.name, Key: key, Class: ErrUnavailable, Cause: ctx.Err()}
	}
}

// refreshAsync starts a background fetch unless one is running or the
// entry fetched at seen has been replaced meanwhile.
func (c *Cache) refreshAsync(key string, ttl time.Duration, seen time.Time) {
	if c.base.Err() != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_, _, _ = c.group.Do(key, func() (any, error) {
			c.mu.Lock()
			e := c.entries[key]
			c.mu.Unlock()
			if e != nil && e.fetched.After(seen) {
				return e.val, nil // another fetch already refreshed it
			}
			return c.fetch(key, ttl)
		})
	}()
}

// fetch asks the source once, records the outcome and caches a success.
func (c *Cache) fetch(key string, ttl time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(c.base, c.opts.FetchTimeout)
	defer cancel()
	start := c.opts.Now()
	v, err := c.src.Fetch(ctx, key)
	now := c.opts.Now()
	if err == nil && !v.ExpiresAt.IsZero() && !now.Before(v.ExpiresAt) {
		err = ErrExpired
	}
	result := ResultOK
	if err != nil {
		result = resultOf(err)
	}
	c.metrics.fetches.WithLabelValues(c.name, result).Inc()
	c.metrics.duration.WithLabelValues(c.name).Observe(now.Sub(start).Seconds())
	c.mu.Lock()
	st := c.status[key]
	st.LastFetch, st.Result = now, result
	if err == nil {
		st.LastOK = now
		c.store(key, &entry{val: v, fetched: now, until: untilOf(now, ttl, v), ttl: ttl})
	}
	c.status[key] = st
	c.mu.Unlock()
	if err != nil {
		se := &Error{Source: c.name, Key: key, Class: classOf(err), Cause: err}
		var re *retryError
		if errors.As(err, &re) {
			se.RetryAfter = re.after
		}
		c.log.Warn("credential source fetch failed", zap.String(LogSource, c.name), zap.String(LogKey, key),
			zap.String(LogResult, result), zap.Duration(LogDuration, now.Sub(start)), zap.Error(se))
		return nil, se
	}
	c.log.Info("credential source fetch", zap.String(LogSource, c.name), zap.String(LogKey, key),
		zap.String(LogResult, result), zap.Duration(LogDuration, now.Sub(start)))
	return v, nil
}

func untilOf(now time.Time, ttl time.Duration, v Value) time.Time {
	until := now.Add(ttl)
	if !v.ExpiresAt.IsZero() && v.ExpiresAt.Before(until) {
		until = v.ExpiresAt
	}
	return until
}

// store caches e, evicting the oldest entry when full. Callers hold mu.
func (c *Cache) store(key string, e *entry) {
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.opts.MaxEntries {
		var oldest string
		var at time.Time
		for k, o := range c.entries {
			if oldest == "" || o.fetched.Before(at) {
				oldest, at = k, o.fetched
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[key] = e
}

// invalidate drops key ("" = every key), so the next use fetches again.
func (c *Cache) invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if key == "" {
		clear(c.entries)
		return
	}
	delete(c.entries, key)
}

// Status returns the last fetch of every key fetched so far.
func (c *Cache) Status() map[string]KeyStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]KeyStatus, len(c.status))
	for k, v := range c.status {
		out[k] = v
	}
	return out
}
