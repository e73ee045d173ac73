//go:build !unix

package h1

import "net"

// socketPending cannot reach the socket here: the caller reads with a
// deadline instead.
func socketPending(net.Conn) (pending, known bool) { return false, false }

// waitSocket cannot reach the socket here: the caller's Read waits.
func waitSocket(net.Conn) error { return nil }
