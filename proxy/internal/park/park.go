// Package park waits for idle sockets to become readable without a
// goroutine per socket. An idle keep-alive connection otherwise costs a
// goroutine blocked in Read, and its stack (8 KiB once a request has run
// on it) is most of what the connection costs. A [Waiter] registers the
// socket with one shared poller (an epoll instance on Linux) and, when
// the socket becomes readable (data, end of stream, an error), starts its
// ready function with the runner its maker gave it (a goroutine of its
// own, or the proxy's workers that keep their stacks); [Waiter.Cancel]
// takes the socket back first, and exactly one of the two wins. A [Slot]
// is a stream's socket, waited on once per event.
//
// The package knows nothing of HTTP, TLS or airlock's policy: it imports
// nothing of proxy, policy, vault or certs. Where no poller exists
// ([Supported] false) callers keep their blocking read.
package park

import (
	"errors"
	"sync"
	"sync/atomic"
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
	run   func(func()) // starts ready; nil: go ready()

	mu    sync.Mutex // guards state, id, rc
	state waitState
	id    uint64 // the poller's key for this wait (never the fd number)
	rc    syscall.RawConn
}

// NewWaiter returns a wait that runs ready when the socket it is armed on
// becomes readable, started by run (which must not wait for it to
// finish: a pool of workers, say); nil runs it on a goroutine of its own.
func NewWaiter(ready func(), run func(ready func())) *Waiter {
	return &Waiter{ready: ready, run: run}
}

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

// fire is the poller's: the socket is readable. It returns the ready
// function to run when this call ended the wait, else nil.
func (w *Waiter) fire() func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != waitArmed {
		return nil
	}
	deregister(w.id, w.rc)
	w.state = waitDone
	return w.ready
}

// start runs a Waiter's ready with its runner.
func (w *Waiter) start(ready func()) { startWith(w.run, ready) }

// Parked reports how many waits are armed (tests, metrics).
func Parked() int {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	return len(waiters.byID) - waiters.slots + int(armedSlots.Load())
}

// A Slot is one socket's place in the poller, kept across its waits: a
// quiet stream waits once per event, and a Waiter per wait would remove
// the socket from epoll at every event only to add it again at the next
// wait. The first Wait registers the socket; a fired wait leaves the
// registration disabled (EPOLLONESHOT), and the next Wait re-enables it
// (EPOLL_CTL_MOD). Close removes it: call it before the socket closes (a
// closed fd leaves epoll without an event, and the slot's key would stay
// behind).
type Slot struct {
	rc  syscall.RawConn
	run func(func()) // starts ready; nil: go ready()

	mu    sync.Mutex // guards id, state, ready
	id    uint64     // the poller's key, 0 until registered
	state waitState  // waitNew: disarmed; waitArmed; waitDone: closed
	ready func()

	rearmCtl func(fd uintptr) // rearm's call inside rc.Control, bound once
	rearmErr error            // its result
}

// ErrSlotClosed is returned by Wait after Close.
var ErrSlotClosed = errors.New("park: slot closed")

// NewSlot returns rc's slot; nothing is registered until Wait. run
// starts each wait's ready, and must not wait for it to finish (a pool
// of workers, say); nil runs it on a goroutine of its own.
func NewSlot(rc syscall.RawConn, run func(ready func())) *Slot { return &Slot{rc: rc, run: run} }

// Wait arms the slot: ready runs once, started by the slot's runner,
// when the socket is readable, unless Cancel or Close comes first. On
// error nothing is armed. A slot waits once at a time.
func (s *Slot) Wait(ready func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case waitDone:
		return ErrSlotClosed
	case waitArmed:
		return errors.New("park: slot already waiting")
	}
	var err error
	if s.id == 0 {
		s.id, err = registerSlot(s, s.rc)
	} else {
		err = rearm(s)
	}
	if err != nil {
		return err
	}
	s.state, s.ready = waitArmed, ready
	armedSlots.Add(1)
	return nil
}

// Cancel disarms the wait in progress; true means its ready will not run.
// The registration stays: an event that comes later finds the slot
// disarmed, and the next Wait re-enables it.
func (s *Slot) Cancel() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disarm()
}

// Close disarms the slot and removes its socket from the poller for
// good; true means a wait was in progress (its ready will not run).
func (s *Slot) Close() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.disarm()
	if s.id != 0 {
		deregister(s.id, s.rc)
		s.id = 0
	}
	s.state = waitDone
	return was
}

// disarm ends an armed wait (s.mu held).
func (s *Slot) disarm() bool {
	if s.state != waitArmed {
		return false
	}
	s.state, s.ready = waitNew, nil
	armedSlots.Add(-1)
	return true
}

// fire is the poller's: the socket is readable.
func (s *Slot) fire() func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ready := s.ready
	if !s.disarm() {
		return nil
	}
	return ready
}

// start runs a Slot's ready with the slot's runner.
func (s *Slot) start(ready func()) { startWith(s.run, ready) }

// startWith starts ready with run, or on a goroutine of its own.
func startWith(run func(func()), ready func()) {
	if run == nil {
		go ready()
		return
	}
	run(ready)
}

// armedSlots counts the slots armed now: the registered slots are in
// waiters.byID whether armed or not (waiters.slots of them).
var armedSlots atomic.Int64

// waiters maps poller keys to armed waits. Keys come from a counter, so
// an event for a wait that ended (its socket closed, its number handed to
// a new socket) finds nothing instead of the new socket's wait.
var waiters struct {
	mu    sync.Mutex
	next  uint64
	byID  map[uint64]firer
	slots int // the registered Slots among them
}

// firer is what the poller wakes: a Waiter or a Slot. fire returns the
// ready function to run, nil when the wait already ended; start runs it.
type firer interface {
	fire() func()
	start(ready func())
}

func addWaiter(w firer) uint64 {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	if waiters.byID == nil {
		waiters.byID = make(map[uint64]firer)
	}
	if _, ok := w.(*Slot); ok {
		waiters.slots++
	}
	waiters.next++
	waiters.byID[waiters.next] = w
	return waiters.next
}

func removeWaiter(id uint64) {
	waiters.mu.Lock()
	if _, ok := waiters.byID[id].(*Slot); ok {
		waiters.slots--
	}
	delete(waiters.byID, id)
	waiters.mu.Unlock()
}

func lookup(id uint64) firer {
	waiters.mu.Lock()
	defer waiters.mu.Unlock()
	return waiters.byID[id]
}

// wake is called by the poller for an event carrying id.
func wake(id uint64) {
	if w := lookup(id); w != nil {
		if ready := w.fire(); ready != nil {
			w.start(ready)
		}
	}
}
