//go:build !unix

package h1

import "net"

// socketPending cannot reach the socket here: the caller reads with a
// deadline instead.
func socketPending(net.Conn) (pending, known bool) { return false, false }

type peeker struct{}

func newPeeker(net.Conn) *peeker { return nil }

func (*peeker) pending() bool { return true }

func (*peeker) wait() error { return nil }
