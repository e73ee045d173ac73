package usage

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Budget is one `budgets:` entry (the same fields as policy.Budget; the
// integrator copies them over). Empty scope fields match anything; at
// least one is set. Exactly one of Tokens and USD is positive.
type Budget struct {
	Name       string
	Agent      string
	Rule       string
	Credential string
	Tokens     int64
	USD        float64
	Window     string         // "hour", "day", "month" (calendar) or "24h" (rolling)
	Location   *time.Location // calendar windows; nil = UTC
	WarnAt     float64        // 0 = no warning
}

// ErrBudgetExceeded is what a [*BudgetError] matches with errors.Is.
var ErrBudgetExceeded = errors.New("usage budget exceeded")

// BudgetError is Admit's answer when a request does not fit a budget. The
// proxy renders it as 429 BUDGET_EXCEEDED with Retry-After.
type BudgetError struct {
	Budget  string
	Unit    string  // "tokens" or "usd"
	Limit   float64 // in Unit
	Used    float64 // committed in the current window, in Unit
	Pending float64 // reserved by requests in flight, in Unit
	Request float64 // what this request would reserve, in Unit
	Reset   time.Time
	// InFlight: what is used leaves room; requests in flight hold it and
	// may free it any moment (RetryAfter is then 1s).
	InFlight bool
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget %q exceeded: %s of %s %s used, %s reserved in flight, this request needs %s; resets %s",
		e.Budget, fmtAmount(e.Used, e.Unit), fmtAmount(e.Limit, e.Unit), e.Unit,
		fmtAmount(e.Pending, e.Unit), fmtAmount(e.Request, e.Unit), e.Reset.UTC().Format(time.RFC3339))
}

// Suggestion says what the agent's operator can do, for the error body.
func (e *BudgetError) Suggestion() string {
	switch {
	case e.Request > e.Limit:
		return "this request alone reserves more than the budget's limit: lower max_tokens (or the rule's default_max_tokens), or raise the limit of budget " + e.Budget
	case e.InFlight:
		return "requests in flight hold the rest of budget " + e.Budget + ": retry when they finish"
	}
	return "wait until " + e.Reset.UTC().Format(time.RFC3339) + " or raise the limit of budget " + e.Budget + " in the policy"
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// RetryAfter is the whole seconds until Reset (at least 1), for the
// Retry-After header.
func (e *BudgetError) RetryAfter(now time.Time) int {
	if e.InFlight {
		return 1
	}
	s := int(e.Reset.Sub(now).Seconds() + 0.999)
	return max(s, 1)
}

func fmtAmount(v float64, unit string) string {
	if unit == "usd" {
		return strconv.FormatFloat(v, 'f', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// Validate reports a budget the meter cannot enforce.
func (b *Budget) Validate() error {
	switch {
	case b.Name == "":
		return errors.New("budget without a name")
	case b.Agent == "" && b.Rule == "" && b.Credential == "":
		return fmt.Errorf("budget %s: empty scope", b.Name)
	case (b.Tokens > 0) == (b.USD > 0):
		return fmt.Errorf("budget %s: set exactly one of tokens and usd", b.Name)
	case b.WarnAt < 0 || b.WarnAt >= 1:
		return fmt.Errorf("budget %s: warn_at %v is not a fraction below 1", b.Name, b.WarnAt)
	}
	switch b.Window {
	case "hour", "day", "month", "24h":
		return nil
	}
	return fmt.Errorf("budget %s: window %q (want hour, day, month or 24h)", b.Name, b.Window)
}

// Matches reports whether the budget covers requests of agent over rule
// with credential.
func (b *Budget) Matches(agent, rule, credential string) bool {
	return (b.Agent == "" || b.Agent == agent) && (b.Rule == "" || b.Rule == rule) &&
		(b.Credential == "" || b.Credential == credential)
}

// unit is the budget's unit; limit its limit in store units (tokens or
// nano-USD).
func (b *Budget) unit() string {
	if b.USD > 0 {
		return "usd"
	}
	return "tokens"
}

func (b *Budget) limit() int64 {
	if b.USD > 0 {
		return int64(b.USD * 1e9)
	}
	return b.Tokens
}

// toUnit converts store units to the budget's unit.
func (b *Budget) toUnit(v int64) float64 {
	if b.USD > 0 {
		return float64(v) / 1e9
	}
	return float64(v)
}

// Rolling windows are summed from buckets of this size: usage leaves a
// rolling 24h window in steps of at most 5 minutes.
const rollingBucket = 5 * time.Minute

// window returns the store keys of the buckets that make up the budget's
// window at now (oldest first; the last one is the current bucket), and
// when the current calendar window ends (rolling: now + one bucket, the
// earliest anything can leave; see resetAt).
func (b *Budget) window(now time.Time) (buckets []string, end time.Time) {
	w := b.windowAt(now)
	return w.buckets, w.end
}

// budgetWindow is a budget's window as of some instant, and how long it
// holds.
type budgetWindow struct {
	from, to int64    // the same buckets for instants in [from, to), Unix ns
	buckets  []string // shared: read only
	end      time.Time
}

// windowCache is one budget's latest window: the request path builds its
// bucket keys (288 of them for a rolling 24h window) once per bucket
// period, not per call.
type windowCache struct{ p atomic.Pointer[budgetWindow] }

// window is budget i's window at now, from the cache when it still holds.
func (c *conf) window(i int, now time.Time) *budgetWindow {
	n := now.UnixNano()
	if w := c.wins[i].p.Load(); w != nil && n >= w.from && n < w.to {
		return w
	}
	w := c.budgets[i].windowAt(now)
	c.wins[i].p.Store(w)
	return w
}

func (b *Budget) windowAt(now time.Time) *budgetWindow {
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	var start, end time.Time
	switch b.Window {
	case "hour":
		start = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
		end = start.Add(time.Hour)
	case "day":
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
	case "month":
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
		end = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
	default: // 24h rolling
		cur := now.Truncate(rollingBucket)
		n := int(24 * time.Hour / rollingBucket)
		buckets := make([]string, n)
		for i := range n {
			buckets[i] = bucketKey(b.Name, cur.Add(-time.Duration(n-1-i)*rollingBucket))
		}
		end = cur.Add(rollingBucket)
		return &budgetWindow{from: cur.UnixNano(), to: end.UnixNano(), buckets: buckets, end: end}
	}
	return &budgetWindow{from: start.UnixNano(), to: end.UnixNano(), buckets: []string{bucketKey(b.Name, start)}, end: end}
}

// resetAt is when enough usage will have left the window for need more
// units to fit: the calendar end, or for a rolling window the moment the
// oldest buckets holding the excess age out.
func (b *Budget) resetAt(now time.Time, end time.Time, perBucket []int64, reserved, need int64) time.Time {
	if b.Window != "24h" {
		return end
	}
	var used int64
	for _, v := range perBucket {
		used += v
	}
	excess := used + reserved + need - b.limit()
	cur := now.Truncate(rollingBucket)
	n := len(perBucket)
	for i, v := range perBucket {
		excess -= v
		if excess <= 0 {
			// bucket i leaves the window when the window's oldest bucket
			// is the one after it.
			return cur.Add(-time.Duration(n-1-i)*rollingBucket + 24*time.Hour)
		}
	}
	return cur.Add(24 * time.Hour) // only in-flight reservations are in the way
}

// bucketKey names a usage bucket: budget name and the bucket's start.
func bucketKey(name string, start time.Time) string {
	return name + "@" + strconv.FormatInt(start.Unix(), 10)
}

// Bucket is the store key real usage at now is charged to.
func (b *Budget) Bucket(now time.Time) string {
	buckets, _ := b.window(now)
	return buckets[len(buckets)-1]
}
