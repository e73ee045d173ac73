package usage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Store keeps budget counters, in-flight reservations and usage totals.
// Every method is atomic on its own: Reserve checks all its claims and
// reserves all or none, so two concurrent admissions can never both take
// the last room of a budget. The operations are plain counter arithmetic
// over keys so a shared implementation can run each as one Redis Lua
// script (see the package documentation).
type Store interface {
	// Reserve adds r's claims to their budgets' in-flight totals if, for
	// every claim, used(window) + in-flight + amount <= limit; otherwise
	// it reserves nothing and returns an *OverLimitError.
	Reserve(ctx context.Context, r Reservation) error
	// Commit drops reservation id (if still held), adds the charges to
	// their buckets and rec to the usage totals.
	Commit(ctx context.Context, id string, charges []Charge, rec Record) error
	// Release drops reservation id; unknown ids are not an error.
	Release(ctx context.Context, id string) error
	// Window returns a budget's committed usage over buckets and its
	// in-flight reservations.
	Window(ctx context.Context, budget string, buckets []string) (used, reserved int64, err error)
}

// Reservation is one request's claim on every budget that covers it.
type Reservation struct {
	ID      string
	Claims  []Claim
	Now     time.Time
	Expires time.Time // a reservation never committed or released stops counting then
}

// Claim asks for Amount units of a budget (tokens or nano-USD).
type Claim struct {
	Budget  string   // the budget's name: key of its in-flight total
	Buckets []string // usage buckets of the current window, oldest first
	Limit   int64
	Amount  int64
}

// Charge adds real usage to a bucket.
type Charge struct {
	Bucket string
	Amount int64
}

// OverLimitError is Reserve's refusal: claim index Claim did not fit.
type OverLimitError struct {
	Claim     int
	Used      int64
	Reserved  int64
	PerBucket []int64 // usage per bucket of the claim, same order
}

func (e *OverLimitError) Error() string {
	return fmt.Sprintf("claim %d over its limit (used %d, reserved %d)", e.Claim, e.Used, e.Reserved)
}

// Outcome says how much of a response's usage was seen.
type Outcome string

// The outcomes.
const (
	OutcomeOK      Outcome = "ok"       // the provider's final usage was read
	OutcomePartial Outcome = "partial"  // only provisional figures (Anthropic message_start) before the end
	OutcomeNone    Outcome = "no_usage" // nothing: aborted, cancelled, provider error, unreadable
)

// Record is one metered request.
type Record struct {
	Time       time.Time
	Agent      string
	Rule       string
	Credential string
	Model      string // the table's name, or the provider's name when unpriced
	Outcome    Outcome
	Tokens     Tokens
	CostNano   int64 // nano-USD; 0 when unpriced
	Unpriced   bool  // the model is not in the price table: cost unknown
}

// Row is a usage total per UTC day × agent × rule × credential × model.
type Row struct {
	Day        string `json:"day"` // 2006-01-02, UTC
	Agent      string `json:"agent"`
	Rule       string `json:"rule"`
	Credential string `json:"credential"`
	Model      string `json:"model"`
	Unpriced   bool   `json:"unpriced,omitempty"`
	Requests   int64  `json:"requests"`
	Partial    int64  `json:"partial,omitempty"`
	NoUsage    int64  `json:"no_usage,omitempty"`
	Tokens     Tokens `json:"tokens"`
	CostNano   int64  `json:"cost_nano_usd"`
}

type rowKey struct{ day, agent, rule, credential, model string }

type hold struct {
	n       int          // claims
	first   [2]heldClaim // the first claims (most requests have one or two)
	more    []heldClaim  // the rest
	expires time.Time
}

// heldClaim is what a hold keeps of a claim: its part of a budget's
// in-flight total. A hold keeps no slice of the caller's (Reserve's
// claims can live on the caller's stack).
type heldClaim struct {
	budget string
	amount int64
}

// claim is the hold's claim i.
func (h *hold) claim(i int) heldClaim {
	if i < len(h.first) {
		return h.first[i]
	}
	return h.more[i-len(h.first)]
}

// maxUnpricedPerDay bounds the distinct unknown model names kept per day
// (the rest are kept as "other"): model names come from the upstream.
const maxUnpricedPerDay = 50

// MemStore is the in-process [Store]. The zero value is not usable; use
// [NewMemStore].
type MemStore struct {
	mu       sync.Mutex       // guards the fields below
	buckets  map[string]int64 // bucket key → committed units
	inflight map[string]int64 // budget → reserved units
	holds    map[string]hold  // reservation id → its claims
	rows     map[rowKey]*Row
	unpriced map[string]int // day → distinct unpriced model names
	dirty    bool
	// earliest is no later than every held expiry (zero: none may
	// expire), so expire scans the holds only when one can be due.
	earliest time.Time
	// day is the UTC date of instants in [dayFrom, dayFrom+24h), Unix s
	// (addRow formats a date once a day, not per record).
	day     string
	dayFrom int64
	// rolls caches long windows' sums (a rolling 24h window is 288
	// buckets, added up on every Reserve and Window): budget → rollSum.
	rolls map[string]rollSum
}

// rollSum is the committed sum of a window's buckets but its last (the
// current one, which commits change): valid while the window starts at
// first and ends at last. A commit to any other bucket of the budget drops
// it, and so does prune.
type rollSum struct {
	first, last string
	older       int64
}

// rollMin is the window length from which sums are cached.
const rollMin = 8

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{buckets: map[string]int64{}, inflight: map[string]int64{}, holds: map[string]hold{},
		rows: map[rowKey]*Row{}, unpriced: map[string]int{}}
}

// ErrDuplicateReservation: Reserve was called twice with one id.
var ErrDuplicateReservation = errors.New("reservation id already held")

// Reserve implements [Store].
func (s *MemStore) Reserve(_ context.Context, r Reservation) error {
	return s.reserve(r.ID, r.Claims, r.Now, r.Expires)
}

// reserve is Reserve, the reservation's fields apart: it keeps no slice
// of claims (held on the caller's stack).
func (s *MemStore) reserve(id string, claims []Claim, now, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if _, ok := s.holds[id]; ok {
		return ErrDuplicateReservation
	}
	for i, c := range claims {
		if used := s.used(c.Budget, c.Buckets); used+s.inflight[c.Budget]+c.Amount > c.Limit {
			_, per := s.sum(c.Buckets)
			return &OverLimitError{Claim: i, Used: used, Reserved: s.inflight[c.Budget], PerBucket: per}
		}
	}
	for _, c := range claims {
		s.inflight[c.Budget] += c.Amount
	}
	h := hold{n: len(claims), expires: expires}
	for i, c := range claims {
		if hc := (heldClaim{c.Budget, c.Amount}); i < len(h.first) {
			h.first[i] = hc
		} else {
			h.more = append(h.more, hc)
		}
	}
	s.holds[id] = h
	if !expires.IsZero() && (s.earliest.IsZero() || expires.Before(s.earliest)) {
		s.earliest = expires
	}
	return nil
}

// used is the committed usage of budget over buckets. Called with mu held.
func (s *MemStore) used(budget string, buckets []string) int64 {
	n := len(buckets)
	if n < rollMin {
		var used int64
		for _, b := range buckets {
			used += s.buckets[b]
		}
		return used
	}
	first, last := buckets[0], buckets[n-1]
	if r, ok := s.rolls[budget]; ok && r.first == first && r.last == last {
		return r.older + s.buckets[last]
	}
	var older int64
	cacheable := true
	for _, b := range buckets[:n-1] {
		older += s.buckets[b]
		cacheable = cacheable && bucketOf(b) == budget
	}
	if cacheable && bucketOf(last) == budget { // Commit can tell which cache a charge touches
		if s.rolls == nil {
			s.rolls = map[string]rollSum{}
		}
		s.rolls[budget] = rollSum{first: first, last: last, older: older}
	}
	return older + s.buckets[last]
}

// bucketOf is the budget a bucket key (bucketKey: NAME@UNIX) belongs to,
// or "" for a key of another shape.
func bucketOf(key string) string {
	at := strings.LastIndexByte(key, '@')
	if at < 0 {
		return ""
	}
	for _, c := range key[at+1:] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return key[:at]
}

func (s *MemStore) sum(buckets []string) (int64, []int64) {
	var used int64
	per := make([]int64, len(buckets))
	for i, b := range buckets {
		per[i] = s.buckets[b]
		used += per[i]
	}
	return used, per
}

// expire drops reservations past their expiry (their requests died
// without a word). Called with mu held.
func (s *MemStore) expire(now time.Time) {
	if s.earliest.IsZero() || !now.After(s.earliest) {
		return // nothing held can be due yet
	}
	var next time.Time
	for id, h := range s.holds {
		switch {
		case h.expires.IsZero():
		case now.After(h.expires):
			s.drop(id)
		case next.IsZero() || h.expires.Before(next):
			next = h.expires
		}
	}
	s.earliest = next
}

func (s *MemStore) drop(id string) {
	h, ok := s.holds[id]
	if !ok {
		return
	}
	for i := range h.n {
		c := h.claim(i)
		if s.inflight[c.budget] -= c.amount; s.inflight[c.budget] <= 0 {
			delete(s.inflight, c.budget)
		}
	}
	delete(s.holds, id)
}

// Release implements [Store].
func (s *MemStore) Release(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(id)
	return nil
}

// Commit implements [Store].
func (s *MemStore) Commit(_ context.Context, id string, charges []Charge, rec Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitLocked(id, charges, rec)
	return nil
}

// commitLocked is Commit with mu held.
func (s *MemStore) commitLocked(id string, charges []Charge, rec Record) {
	s.drop(id)
	for _, c := range charges {
		if c.Amount > 0 {
			s.buckets[c.Bucket] += c.Amount
			s.touched(c.Bucket)
		}
	}
	s.addRow(rec)
	s.dirty = true
}

// dayOf is t's UTC date, 2006-01-02. Called with mu held.
func (s *MemStore) dayOf(t time.Time) string {
	if u := t.Unix(); s.day == "" || u < s.dayFrom || u >= s.dayFrom+24*3600 {
		d := t.UTC()
		s.day = d.Format(time.DateOnly)
		s.dayFrom = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Unix()
	}
	return s.day
}

func (s *MemStore) addRow(rec Record) {
	day := s.dayOf(rec.Time)
	k := rowKey{day, rec.Agent, rec.Rule, rec.Credential, rec.Model}
	row := s.rows[k]
	if row == nil {
		if rec.Unpriced {
			if s.unpriced[day] >= maxUnpricedPerDay {
				k.model = OtherModel
				rec.Model = OtherModel
			} else {
				s.unpriced[day]++
			}
		}
		if row = s.rows[k]; row == nil {
			row = &Row{Day: day, Agent: rec.Agent, Rule: rec.Rule, Credential: rec.Credential, Model: rec.Model, Unpriced: rec.Unpriced}
			s.rows[k] = row
		}
	}
	row.Requests++
	switch rec.Outcome {
	case OutcomePartial:
		row.Partial++
	case OutcomeNone:
		row.NoUsage++
	}
	row.Tokens.Input += rec.Tokens.Input
	row.Tokens.Output += rec.Tokens.Output
	row.Tokens.CachedInput += rec.Tokens.CachedInput
	row.Tokens.CacheWrite += rec.Tokens.CacheWrite
	row.Tokens.Reasoning += rec.Tokens.Reasoning
	row.CostNano += rec.CostNano
}

// touched drops the cached sum a change of bucket makes stale: every
// bucket of a cached window is NAME@UNIX of its budget (used checks), so
// only the cache of that budget can hold it, and only among the older
// buckets. Called with mu held.
func (s *MemStore) touched(bucket string) {
	if len(s.rolls) == 0 {
		return
	}
	name := bucketOf(bucket)
	if r, ok := s.rolls[name]; ok && r.last != bucket {
		delete(s.rolls, name)
	}
}

// Window implements [Store].
func (s *MemStore) Window(_ context.Context, budget string, buckets []string) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used(budget, buckets), s.inflight[budget], nil
}

// Rows returns the usage totals, sorted by day then names.
func (s *MemStore) Rows() []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rowsLocked()
}

func (s *MemStore) rowsLocked() []Row {
	out := make([]Row, 0, len(s.rows))
	for _, r := range s.rows {
		out = append(out, *r)
	}
	sortRows(out)
	return out
}

func sortRows(out []Row) {
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return strings.Join([]string{a.Day, a.Agent, a.Rule, a.Credential, a.Model}, "\x00") <
			strings.Join([]string{b.Day, b.Agent, b.Rule, b.Credential, b.Model}, "\x00")
	})
}

// prune forgets buckets older than keepBuckets and rows older than
// keepRows. Called with mu held.
func (s *MemStore) prune(now time.Time, keepBuckets, keepRows time.Duration) {
	clear(s.rolls) // buckets may go
	for k := range s.buckets {
		at := strings.LastIndexByte(k, '@')
		if sec, err := strconv.ParseInt(k[at+1:], 10, 64); at < 0 || err != nil || now.Sub(time.Unix(sec, 0)) > keepBuckets {
			delete(s.buckets, k)
		}
	}
	oldest := now.Add(-keepRows).UTC().Format(time.DateOnly)
	for k := range s.rows {
		if k.day < oldest {
			delete(s.rows, k)
		}
	}
	for d := range s.unpriced {
		if d < oldest {
			delete(s.unpriced, d)
		}
	}
}
