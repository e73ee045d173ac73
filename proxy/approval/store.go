package approval

import (
	"context"
	"time"
)

// Store keeps pending entries, their decisions and durable remembered
// approvals. Every method is atomic: in a Redis implementation each is one
// Lua script or MULTI, and Subscribe is a pub/sub channel, so that a
// decision taken on replica B releases the waiters held on replica A.
type Store interface {
	// Join adds one waiter to the pending entry for p.Key, creating it from p
	// (its ID, Request, Created) when none exists. It returns the entry as
	// stored and whether this call created it.
	Join(ctx context.Context, p Pending) (Pending, bool, error)
	// Leave removes one waiter from entry id. When it was the last, the
	// entry is removed and gone is true. ErrNotFound when the entry was
	// already decided or removed.
	Leave(ctx context.Context, id string) (gone bool, err error)
	// Get returns the pending entry id, or ErrNotFound.
	Get(ctx context.Context, id string) (Pending, error)
	// List returns the pending entries, oldest first.
	List(ctx context.Context) ([]Pending, error)
	// Resolve records d as the decision for entry d.ID, removes the entry,
	// keeps d for its key when d is durable (approved, remember always or a
	// duration) and publishes d to every subscriber. ErrNotFound when the
	// entry is gone (another decision won, or its waiters left).
	Resolve(ctx context.Context, d Decision) error
	// Decided returns the decision recorded for entry id, kept for a while
	// after Resolve so that a waiter that joined just before the decision
	// still learns it.
	Decided(ctx context.Context, id string) (Decision, bool, error)
	// Remembered returns the durable approval for key still in force at now.
	Remembered(ctx context.Context, key string, now time.Time) (Decision, bool, error)
	// Subscribe delivers every decision Resolve records, from any replica,
	// until ctx ends (then the channel is closed). A slow subscriber may
	// miss events; waiters cover that by polling Decided.
	Subscribe(ctx context.Context) (<-chan Decision, error)
}
