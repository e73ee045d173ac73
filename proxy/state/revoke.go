package state

import (
	"context"
	"sync"
	"time"
)

// Revocation says an agent's identity stopped being valid: removed,
// disabled, re-keyed, or left without a rule. Every replica that holds
// connections of Agent closes them when it hears of it.
type Revocation struct {
	Agent  string
	Reason string // removed, disabled, rekeyed, no_rule
	Origin string // the replica that noticed it (its own events come back to it)
	At     time.Time
}

// Revocations carries [Revocation] events to every replica. Memory
// delivers them within the process; a fleet store broadcasts them.
type Revocations interface {
	// PublishRevocation sends r to every subscriber (this process's too).
	PublishRevocation(ctx context.Context, r Revocation) error
	// SubscribeRevocations returns the events published from now on, until
	// ctx ends (then the channel is closed). A subscriber that falls more
	// than revocationBuffer events behind loses the oldest ones.
	SubscribeRevocations(ctx context.Context) (<-chan Revocation, error)
}

// revocationBuffer is how many undelivered events a subscriber may hold.
const revocationBuffer = 256

// revocationHub is Memory's fan-out of revocation events.
type revocationHub struct {
	mu   sync.Mutex // guards subs
	subs map[chan Revocation]struct{}
}

// PublishRevocation implements Revocations.
func (m *Memory) PublishRevocation(_ context.Context, r Revocation) error {
	h := &m.revs
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		for {
			select {
			case ch <- r:
			default: // full: drop the oldest, then retry
				select {
				case <-ch:
				default:
				}
				continue
			}
			break
		}
	}
	return nil
}

// SubscribeRevocations implements Revocations.
func (m *Memory) SubscribeRevocations(ctx context.Context) (<-chan Revocation, error) {
	h := &m.revs
	ch := make(chan Revocation, revocationBuffer)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan Revocation]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
		close(ch)
	})
	return ch, nil
}
