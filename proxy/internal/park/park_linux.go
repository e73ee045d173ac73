package park

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The poller: one epoll instance, level-triggered with EPOLLONESHOT (an
// event fires once, then the wait is removed by whoever ended it), and one
// goroutine in epoll_wait. An event's data is the wait's key, never the
// fd: fd numbers are reused once closed, and closing an fd drops it from
// epoll without an event.

var poller struct {
	once sync.Once
	fd   int
	err  error
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

// loop delivers events for as long as the process runs.
func loop(epfd int) {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if err != nil {
			if !errors.Is(err, unix.EINTR) {
				time.Sleep(10 * time.Millisecond) // not expected: do not spin
			}
			continue
		}
		for _, ev := range events[:n] {
			wake(uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32)
		}
	}
}

// register adds rc's socket under a new key; the key is in the map before
// the socket is in epoll, so an immediate event finds it.
func register(w *Waiter, rc syscall.RawConn) (uint64, error) {
	if err := start(); err != nil {
		return 0, err
	}
	id := addWaiter(w)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
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

// deregister removes the wait; inside Control, so a socket closed in the
// meantime (gone from epoll with its close) is never confused with a new
// socket that got its number.
func deregister(id uint64, rc syscall.RawConn) {
	removeWaiter(id)
	_ = rc.Control(func(fd uintptr) { _ = unix.EpollCtl(poller.fd, unix.EPOLL_CTL_DEL, int(fd), nil) })
}
