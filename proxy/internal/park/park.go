// Package park waits for idle sockets to become readable without a
// goroutine per socket. An idle keep-alive connection otherwise costs a
// goroutine blocked in Read, and its stack (8 KiB once a request has run
// on it) is most of what the connection costs. A [Waiter] registers the
// socket with one shared poller (an epoll instance on Linux) and, when
// the socket becomes readable (data, end of stream, an error), runs its
// ready function on a new goroutine; [Waiter.Cancel] takes the socket
// back first, and exactly one of the two wins.
//
// The package knows nothing of HTTP, TLS or airlock's policy: it imports
// nothing of proxy, policy, vault or certs. Where no poller exists
// ([Supported] false) callers keep their blocking read.
package park

import (
	"errors"
	"sync"
	"syscall"
)

// ErrUnsupported is returned by Arm where no poller exists.
var ErrUnsupported = errors.New("park: no poller on this platform")

type waitState uint8

const (
	waitNew   waitState = iota // not armed yet
	waitArmed                  // registered with the poller
	waitDone                   // fired or cancelled: never again
)

// Waiter is one wait for one socket to become readable. Use a new
// Waiter for every wait: a Waiter that fired or was cancelled stays done.
type Waiter struct {
	ready func()

	mu    sync.Mutex // guards state, id, rc
	state waitState
	id    uint64 // the poller's key for this wait (never the fd number)
	rc    syscall.RawConn
}

// NewWaiter returns a wait that runs ready, on a goroutine of its own,
// when the socket it is armed on becomes readable.
func NewWaiter(ready func()) *Waiter { return &Waiter{ready: ready} }

// Arm registers rc's socket. Cancelled before, Arm does nothing and
// returns nil (whoever cancelled owns the socket). On error nothing is
// registered and the caller still owns the socket once it wins Cancel.
// The registration is made inside rc.Control, so the socket cannot be
// closed (and its number reused) underneath it.
func (w *Waiter) Arm(rc syscall.RawConn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != waitNew {
		return nil
	}
	id, err := register(w, rc)
	if err != nil {
		return err
	}
	w.state, w.id, w.rc = waitArmed, id, rc
	return nil
}

// Cancel ends the wait unless it already fired or was cancelled; true
// means ready will never run and the caller owns the socket.
func (w *Waiter) Cancel() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == waitDone {
		return false
	}
	if w.state == waitArmed {
		deregister(w.id, w.rc)
	}
	w.state = waitDone
	return true
}

// fire is the poller's: the socket is readable. True means this call
// ended the wait (ready is to run).
func (w *Waiter) fire() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != waitArmed {
		return false
	}
	deregister(w.id, w.rc)
	w.state = waitDone
	return true
}

// Parked reports how many waits are registered (tests, metrics).
func Parked() int {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	return len(waiters.byID)
}

// waiters maps poller keys to armed waits. Keys come from a counter, so
// an event for a wait that ended (its socket closed, its number handed to
// a new socket) finds nothing instead of the new socket's wait.
var waiters struct {
	mu   sync.Mutex
	next uint64
	byID map[uint64]*Waiter
}

func addWaiter(w *Waiter) uint64 {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	if waiters.byID == nil {
		waiters.byID = make(map[uint64]*Waiter)
	}
	waiters.next++
	waiters.byID[waiters.next] = w
	return waiters.next
}

func removeWaiter(id uint64) {
	waiters.mu.Lock()
	delete(waiters.byID, id)
	waiters.mu.Unlock()
}

func lookup(id uint64) *Waiter {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	return waiters.byID[id]
}

// wake is called by the poller for an event carrying id.
func wake(id uint64) {
	if w := lookup(id); w != nil && w.fire() {
		go w.ready()
	}
}
