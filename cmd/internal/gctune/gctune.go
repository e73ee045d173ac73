// Package gctune sets the garbage collector's pace for airlock serve.
//
// A proxy's live heap is small (a few MiB plus ~15-30 KiB per open
// connection) while it allocates a few KiB per request, so at GOGC=100 the
// collector runs many times a second on a heap it can hardly shrink, and
// on a proxy pinned to one core each cycle is CPU taken from requests
// (8 % of airlock's CPU per request at c=10, airlock-bench). The tuner
// gives a small heap a fixed headroom instead of one as large as the
// heap: GOGC = 100 × Headroom / live, between MinPercent and MaxPercent.
//
// # Large heaps
//
// A large live heap is thousands of open connections and streams, each
// holding its TLS state for minutes while it allocates little: there
// GOGC=100's headroom doubles what a connection costs. The headroom is
// max(Headroom, live/2): from 64 MiB live on, GOGC is [MinPercent] (50),
// the heap between collections stays within 1.5× live, and collections
// come twice as often as at GOGC=100. A cycle costs in proportion to the
// live heap and cycles come at the allocation rate over the headroom, so
// the GC's CPU goes as the allocation rate over GOGC: twice GOGC=100's,
// whatever the heap's size (at 10 000 idle connections under load, +3.5 %
// of airlock's CPU per request; streams allocate little per event).
// It is a floor on a proportional headroom, not a memory limit: the goal
// always stays 50 % above the live heap, so a heap that grows gets a
// goal that grows with it and the collector cannot be driven into
// back-to-back cycles (GOMEMLIMIT near the live heap does that).
//
// The tuner re-reads the live heap after every collection (a finalizer
// re-armed each cycle: no goroutine, no polling).
//
// An operator's GOGC or GOMEMLIMIT wins: with either set the tuner does
// nothing. It imports nothing of airlock.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

const (
	// Headroom is the heap growth allowed between collections while the
	// live heap is small.
	Headroom = 32 << 20
	// MaxPercent caps GOGC (a 4 MiB live heap would otherwise get 800).
	MaxPercent = 400
	// MinPercent is the floor: reached at 2 × Headroom (64 MiB) live,
	// a heap of thousands of connections.
	MinPercent = 50
)

// Percent is the GOGC for a live heap of live bytes.
func Percent(live uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := int(100 * Headroom / live)
	return min(max(p, MinPercent), MaxPercent)
}

// Enabled reports whether the tuner may run: neither GOGC nor GOMEMLIMIT
// is set in env (os.LookupEnv's contract).
func Enabled(lookup func(string) (string, bool)) bool {
	_, gogc := lookup("GOGC")
	_, limit := lookup("GOMEMLIMIT")
	return !gogc && !limit
}

var (
	started atomic.Bool
	current atomic.Int64 // the GOGC the tuner set last
)

// Start begins tuning unless GOGC or GOMEMLIMIT is set; it reports
// whether the tuner runs. Calls after the first start nothing new.
func Start() bool {
	if !Enabled(os.LookupEnv) {
		return false
	}
	if started.CompareAndSwap(false, true) {
		adjust()
		arm()
	}
	return true
}

// Current is the GOGC the tuner set last (0: not started).
func Current() int { return int(current.Load()) }

// arm runs adjust after the next collection, and again after each one.
func arm() {
	runtime.SetFinalizer(new(cycle), func(*cycle) { adjust(); arm() })
}

// cycle is the object whose finalizer marks a collection.
type cycle struct{ _ [16]byte } // not tiny-allocated: a finalizer on a tiny object may never run

// adjust sets GOGC for the heap live after the last collection.
func adjust() {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := Percent(s[0].Value.Uint64())
	if int64(p) != current.Load() {
		current.Store(int64(p))
		debug.SetGCPercent(p)
	}
}
