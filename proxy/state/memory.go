package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxBuckets bounds the rate-limit buckets; keys come from configuration
// (agent × rule names), so reaching it means many reloads renamed rules:
// stale buckets go.
const maxBuckets = 100_000

// Memory is the in-process Store. The zero value is not ready; use
// NewMemory.
type Memory struct {
	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket

	tmu     sync.Mutex // guards tokens and locks
	tokens  map[string]Token
	locks   map[string]time.Time // refresh lock expiry by key
	now     func() time.Time
	budgets budgetBook
	revs    revocationHub // revocation events (revoke.go)
}

type bucket struct {
	lim   *rate.Limiter
	limit rate.Limit
	burst int
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{buckets: map[string]*bucket{}, tokens: map[string]Token{}, locks: map[string]time.Time{},
		now: time.Now, budgets: budgetBook{spent: map[string]int64{}, held: map[string]map[string]hold{}}}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, limit rate.Limit, burst int) (bool, time.Duration, error) {
	ok, wait := m.AllowAt(key, limit, burst, m.now())
	return ok, wait, nil
}

// AllowAt is Allow at time now (tests drive the clock with it).
func (m *Memory) AllowAt(key string, limit rate.Limit, burst int, now time.Time) (bool, time.Duration) {
	r := m.bucket(key, limit, burst, now).ReserveN(now, 1)
	if !r.OK() {
		return false, time.Duration(math.MaxInt64)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket returns the limiter of key, created or updated to limit and burst.
func (m *Memory) bucket(key string, limit rate.Limit, burst int, now time.Time) *rate.Limiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.buckets[key]
	if b == nil {
		if len(m.buckets) >= maxBuckets {
			clear(m.buckets)
		}
		b = &bucket{lim: rate.NewLimiter(limit, burst), limit: limit, burst: burst}
		m.buckets[key] = b
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

// Token implements Tokens.
func (m *Memory) Token(_ context.Context, key string) (Token, bool, error) {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	t, ok := m.tokens[key]
	return t, ok, nil
}

// PutToken implements Tokens.
func (m *Memory) PutToken(_ context.Context, key string, t Token) error {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	m.tokens[key] = t
	return nil
}

// DropToken implements Tokens.
func (m *Memory) DropToken(_ context.Context, key, value string) error {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	if t, ok := m.tokens[key]; ok && t.Value == value {
		delete(m.tokens, key)
	}
	return nil
}

// LockRefresh implements Tokens.
func (m *Memory) LockRefresh(_ context.Context, key string, ttl time.Duration) (func(), bool, error) {
	m.tmu.Lock()
	defer m.tmu.Unlock()
	now := m.now()
	if until, held := m.locks[key]; held && now.Before(until) {
		return func() {}, false, nil
	}
	until := now.Add(ttl)
	m.locks[key] = until
	return func() {
		m.tmu.Lock()
		defer m.tmu.Unlock()
		if m.locks[key] == until {
			delete(m.locks, key)
		}
	}, true, nil
}

// budgetBook is the budget counters and open reservations.
type budgetBook struct {
	mu    sync.Mutex // guards spent, held and file
	spent map[string]int64
	held  map[string]map[string]hold // key → reservation id → hold
	file  string                     // Persist: counters saved here after each Commit
}

type hold struct {
	amount  int64
	expires time.Time
}

// Reserve implements Budgets.
func (m *Memory) Reserve(_ context.Context, key string, amount, limit int64, ttl time.Duration) (string, error) {
	b := &m.budgets
	now := m.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	reserved := b.prune(key, now)
	if b.spent[key]+reserved+amount > limit {
		return "", fmt.Errorf("budget %s: %w", key, ErrBudgetExceeded)
	}
	id := newID()
	if b.held[key] == nil {
		b.held[key] = map[string]hold{}
	}
	b.held[key][id] = hold{amount: amount, expires: now.Add(ttl)}
	return id, nil
}

// prune drops expired reservations of key and returns the open total.
func (b *budgetBook) prune(key string, now time.Time) int64 {
	var total int64
	for id, h := range b.held[key] {
		if now.After(h.expires) {
			delete(b.held[key], id)
			continue
		}
		total += h.amount
	}
	return total
}

// Commit implements Budgets.
func (m *Memory) Commit(_ context.Context, key, id string, amount int64) error {
	b := &m.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.held[key], id)
	b.spent[key] += amount
	return b.save()
}

// Release implements Budgets.
func (m *Memory) Release(_ context.Context, key, id string) error {
	b := &m.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.held[key], id)
	return nil
}

// Spent implements Budgets.
func (m *Memory) Spent(_ context.Context, key string) (int64, int64, error) {
	b := &m.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent[key], b.prune(key, m.now()), nil
}

// Persist makes the budget counters survive restarts: it loads them from
// file (if it exists) and saves them there after every Commit (temp file,
// fsync, rename). Budget keys should name their window ("team/2026-05")
// so an old window's counter is simply never read again.
func (m *Memory) Persist(file string) error {
	b := &m.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	raw, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &b.spent); err != nil {
			return fmt.Errorf("state file %s: %w", file, err)
		}
	case !os.IsNotExist(err):
		return fmt.Errorf("state file: %w", err)
	}
	b.file = file
	return nil
}

// save writes the counters to the Persist file, if any. b.mu is held.
func (b *budgetBook) save() error {
	if b.file == "" {
		return nil
	}
	raw, err := json.Marshal(b.spent)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.file), ".state-*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(raw); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), b.file)
	}
	if err != nil {
		return fmt.Errorf("state file %s: %w", b.file, err)
	}
	return nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var _ Store = (*Memory)(nil)
