package rpc

import (
	"sync"
	"time"
)

// lease is one retrieve's grant of a value for a time.
type lease struct {
	agent    string
	path     string
	expires  time.Time
	released bool
}

// leaseTable tracks leases in memory until they expire.
type leaseTable struct {
	max    int
	mu     sync.Mutex // guards leases
	leases map[string]*lease
}

func newLeaseTable(max int) *leaseTable {
	return &leaseTable{max: max, leases: make(map[string]*lease)}
}

// add records a lease; false when the table is full of live leases.
func (t *leaseTable) add(id string, l *lease, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.leases) >= t.max {
		t.pruneLocked(now)
		if len(t.leases) >= t.max {
			return false
		}
	}
	t.leases[id] = l
	return true
}

// release marks the lease released. It reports false when the lease is
// unknown, expired, or not agent's; releasing twice is fine.
func (t *leaseTable) release(id string, agents map[string]bool, now time.Time) (*lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.leases[id]
	if l == nil || !agents[l.agent] {
		return nil, false
	}
	if !now.Before(l.expires) {
		delete(t.leases, id)
		return nil, false
	}
	l.released = true
	return l, true
}

// active reports whether id is a live, unreleased lease.
func (t *leaseTable) active(id string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.leases[id]
	return l != nil && !l.released && now.Before(l.expires)
}

func (t *leaseTable) pruneLocked(now time.Time) {
	for id, l := range t.leases {
		if !now.Before(l.expires) {
			delete(t.leases, id)
		}
	}
}
