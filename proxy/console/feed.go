package console

import (
	"sort"
	"sync"
	"time"
)

// Event is one decision of the pipeline as the console shows it. The lead's
// audit path fills it; it holds names and outcomes, never a secret, and Path
// without its query.
type Event struct {
	Time       time.Time `json:"time"`
	Agent      string    `json:"agent"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Rule       string    `json:"rule,omitempty"`
	Credential string    `json:"credential,omitempty"` // vault path (a name), never the value
	Decision   string    `json:"decision"`             // inject, allow, deny, approval_denied, ...
	Code       string    `json:"code,omitempty"`       // error code when refused
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
}

// Usage is use per agent and per credential over the last hour (per
// minute) and the last day (per hour).
type Usage struct {
	Hour UsageWindow `json:"hour"`
	Day  UsageWindow `json:"day"`
}

// UsageWindow is one chart set: Counts[i] is the bucket ending
// (len-1-i) buckets before now.
type UsageWindow struct {
	BucketSeconds int      `json:"bucket_seconds"`
	Agents        []Series `json:"agents"`
	Credentials   []Series `json:"credentials"`
}

// Series is the counts of one name.
type Series struct {
	Name   string  `json:"name"`
	Total  int64   `json:"total"`
	Counts []int64 `json:"counts"`
}

// maxNames bounds the names Feed counts per kind; later ones count as
// "other".
const maxNames = 200

// Feed is a ring buffer of the last decisions plus per-minute and per-hour
// counters per agent and credential. Safe for concurrent use; Add is O(1).
type Feed struct {
	mu     sync.Mutex // guards everything below
	ring   []Event
	next   int
	full   bool
	agents map[string]*counter
	creds  map[string]*counter
}

// counter is a name's use: 60 minute buckets and 24 hour buckets, each
// stamped with the minute/hour it counts so stale buckets read as zero.
type counter struct {
	min, minAt   [60]int64
	hour, hourAt [24]int64
}

// NewFeed keeps the last size events (default 500 when size <= 0).
func NewFeed(size int) *Feed {
	if size <= 0 {
		size = 500
	}
	return &Feed{ring: make([]Event, size), agents: map[string]*counter{}, creds: map[string]*counter{}}
}

// Add records one decision (called from the audit path).
func (f *Feed) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Path = pathOnly(e.Path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ring[f.next] = e
	f.next = (f.next + 1) % len(f.ring)
	if f.next == 0 {
		f.full = true
	}
	if e.Agent != "" {
		bump(f.agents, e.Agent, e.Time)
	}
	if e.Credential != "" {
		bump(f.creds, e.Credential, e.Time)
	}
}

func bump(m map[string]*counter, name string, t time.Time) {
	c, ok := m[name]
	if !ok {
		if len(m) >= maxNames {
			name = "other"
			if c, ok = m[name]; !ok {
				c = &counter{}
				m[name] = c
			}
		} else {
			c = &counter{}
			m[name] = c
		}
	}
	mi, hi := t.Unix()/60, t.Unix()/3600
	add(c.min[:], c.minAt[:], mi)
	add(c.hour[:], c.hourAt[:], hi)
}

// add counts one use in bucket at; a bucket already holding a newer period
// is left alone (an event older than the window).
func add(counts, stamps []int64, at int64) {
	i := at % int64(len(counts))
	switch {
	case stamps[i] > at:
		return
	case stamps[i] < at:
		stamps[i], counts[i] = at, 0
	}
	counts[i]++
}

// Recent returns up to n events, newest first, of agent ("" = all).
func (f *Feed) Recent(agent string, n int) []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	size := f.next
	if f.full {
		size = len(f.ring)
	}
	var out []Event
	for i := 0; i < size && len(out) < n; i++ {
		e := f.ring[(f.next-1-i+len(f.ring))%len(f.ring)]
		if agent == "" || e.Agent == agent {
			out = append(out, e)
		}
	}
	return out
}

// Agents returns the agent names the feed has counted, sorted.
func (f *Feed) Agents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.agents))
	for a := range f.agents {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Usage implements [UsageSource].
func (f *Feed) Usage(now time.Time) Usage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Usage{
		Hour: UsageWindow{BucketSeconds: 60, Agents: series(f.agents, now, true), Credentials: series(f.creds, now, true)},
		Day:  UsageWindow{BucketSeconds: 3600, Agents: series(f.agents, now, false), Credentials: series(f.creds, now, false)},
	}
}

// series reads m's minute (perMinute) or hour buckets ending at now.
func series(m map[string]*counter, now time.Time, perMinute bool) []Series {
	out := []Series{}
	for name, c := range m {
		s := Series{Name: name}
		if perMinute {
			s.Counts = read(c.min[:], c.minAt[:], now.Unix()/60)
		} else {
			s.Counts = read(c.hour[:], c.hourAt[:], now.Unix()/3600)
		}
		for _, n := range s.Counts {
			s.Total += n
		}
		if s.Total > 0 {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// read returns the buckets up to cur, oldest first.
func read(counts, stamps []int64, cur int64) []int64 {
	n := int64(len(counts))
	out := make([]int64, n)
	for i := int64(0); i < n; i++ {
		at := cur - n + 1 + i
		if at >= 0 && stamps[at%n] == at {
			out[i] = counts[at%n]
		}
	}
	return out
}
