// Package deep runs short jobs that need a deep stack (TLS handshakes,
// leaf mints, a waiting stream's relay of its next event) on goroutines
// that keep one.
//
// A new goroutine starts with a small stack and grows it by copying it,
// frame by frame, each time it runs out: a TLS handshake on a fresh
// goroutine grew it several times over, and on a new host's first request
// airlock spent about 8 % of its CPU in those copies (perf and pprof of
// airlock-bench --new-hosts 2000). A worker that ran a handshake keeps the
// stack it grew for the next one.
package deep

import (
	"sync/atomic"
	"time"
)

// Pool is a set of workers. Its zero value is not usable; use [New].
type Pool struct {
	jobs chan func()
	max  int32
	idle time.Duration
	n    atomic.Int32 // workers alive
	made atomic.Int64 // goroutines started, workers and others (tests)
}

// New returns a pool of at most max workers; a worker idle for idle
// exits (and its stack with it).
func New(max int, idle time.Duration) *Pool {
	return &Pool{jobs: make(chan func()), max: int32(max), idle: idle}
}

// Go runs f on an idle worker, on a new worker when none is idle and the
// pool is not full, or else on a goroutine of its own: it never waits for
// a worker to free up. On a nil pool it is go f().
func (p *Pool) Go(f func()) {
	if p == nil {
		go f()
		return
	}
	select {
	case p.jobs <- f:
		return
	default:
	}
	p.made.Add(1)
	if p.n.Add(1) <= p.max {
		go p.work(f)
		return
	}
	p.n.Add(-1)
	go f()
}

// Workers is the number of workers alive (tests).
func (p *Pool) Workers() int { return int(p.n.Load()) }

func (p *Pool) work(f func()) {
	defer p.n.Add(-1) // a job that panics takes its worker down with the process, as go f() would
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		f = nil // the job's closure is not kept alive while idle
		t.Reset(p.idle)
		select {
		case f = <-p.jobs:
		case <-t.C:
			return
		}
	}
}
