//go:build !linux

package park

import "syscall"

// Supported reports whether this platform has the poller.
func Supported() bool { return false }

func register(*Waiter, syscall.RawConn) (uint64, error) { return 0, ErrUnsupported }

func registerSlot(*Slot, syscall.RawConn) (uint64, error) { return 0, ErrUnsupported }

func rearm(*Slot) error { return ErrUnsupported }

func deregister(uint64, syscall.RawConn) {}
