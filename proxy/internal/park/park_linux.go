package park

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The poller: one epoll instance, level-triggered with EPOLLONESHOT (an
// event fires once, then the wait is removed by whoever ended it). The
// epoll fd is itself watched by Go's network poller, so the goroutine
// that reads its events sleeps like any goroutine blocked in Read (no
// thread held in epoll_wait, and a wake costs what a socket's does). An
// event's data is the wait's key, never the fd: fd numbers are reused
// once closed, and closing an fd drops it from epoll without an event.

// viaNetpoll is set once the events are read through Go's poller (tests).
var viaNetpoll atomic.Bool

var poller struct {
	once sync.Once
	fd   int
	err  error
	file *os.File // the epoll fd as Go's poller knows it
}

// Supported reports whether this platform has the poller.
func Supported() bool { return start() == nil }

func start() error {
	poller.once.Do(func() {
		poller.fd, poller.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if poller.err != nil {
			poller.err = fmt.Errorf("park: epoll_create1: %w", poller.err)
			return
		}
		go loop(poller.fd)
	})
	return poller.err
}

// loop delivers events for as long as the process runs: through Go's
// network poller when the epoll fd can be handed to it, else blocked in
// epoll_wait.
func loop(epfd int) {
	events := make([]unix.EpollEvent, 128)
	if rc := netpolled(epfd); rc != nil {
		_ = rc.Read(func(fd uintptr) bool {
			viaNetpoll.Store(true)
			for {
				n, err := unix.EpollWait(int(fd), events, 0)
				if err != nil && !errors.Is(err, unix.EINTR) {
					break
				}
				deliver(events[:max(n, 0)])
				if n < len(events) {
					break // drained: sleep until the epoll fd is readable again
				}
			}
			return false
		})
	}
	for { // not expected: Go's poller refused the epoll fd
		n, err := unix.EpollWait(epfd, events, -1)
		if err != nil {
			if !errors.Is(err, unix.EINTR) {
				time.Sleep(10 * time.Millisecond) // do not spin
			}
			continue
		}
		deliver(events[:n])
	}
}

// netpolled hands the (non-blocking) epoll fd to Go's network poller.
func netpolled(epfd int) syscall.RawConn {
	if err := unix.SetNonblock(epfd, true); err != nil {
		return nil
	}
	poller.file = os.NewFile(uintptr(epfd), "park-epoll") // held: its finalizer would close the fd
	rc, err := poller.file.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

func deliver(events []unix.EpollEvent) {
	for _, ev := range events {
		wake(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
	}
}

// register adds rc's socket under a new key; the key is in the map before
// the socket is in epoll, so an immediate event finds it.
func register(w *Waiter, rc syscall.RawConn) (uint64, error) { return registerFirer(w, rc) }

// registerSlot registers a Slot's socket (its first Wait).
func registerSlot(s *Slot, rc syscall.RawConn) (uint64, error) { return registerFirer(s, rc) }

func registerFirer(w firer, rc syscall.RawConn) (uint64, error) {
	if err := start(); err != nil {
		return 0, err
	}
	id := addWaiter(w)
	ev := eventFor(id)
	var errCtl error
	if err := rc.Control(func(fd uintptr) { errCtl = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_ADD, int(fd), &ev) }); err != nil {
		errCtl = err // closed already
	}
	if errCtl != nil {
		removeWaiter(id)
		return 0, fmt.Errorf("park: register: %w", errCtl)
	}
	return id, nil
}

// rearm re-enables the registration of s (s.mu held) that a fired wait
// left disabled. The call into Control is bound once per slot: a closure
// made here would cost an allocation every time a stream waits, that is
// for every event it relays.
func rearm(s *Slot) error {
	if s.rearmCtl == nil {
		s.rearmCtl = func(fd uintptr) {
			ev := eventFor(s.id)
			s.rearmErr = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	}
	s.rearmErr = nil
	if err := s.rc.Control(s.rearmCtl); err != nil {
		s.rearmErr = err // closed already
	}
	if s.rearmErr != nil {
		return fmt.Errorf("park: re-arm: %w", s.rearmErr)
	}
	return nil
}

// eventFor is the registration of key id: readable (or hung up), once.
func eventFor(id uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

// deregister removes the wait; inside Control, so a socket closed in the
// meantime (gone from epoll with its close) is never confused with a new
// socket that got its number.
func deregister(id uint64, rc syscall.RawConn) {
	removeWaiter(id)
	_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}
