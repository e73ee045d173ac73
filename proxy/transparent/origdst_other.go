//go:build !linux

package transparent

import (
	"errors"
	"net"
	"net/netip"
)

var errUnsupported = errors.New("transparent interception needs Linux")

// OriginalDst is only available on Linux.
func OriginalDst(net.Conn) (netip.AddrPort, error) { return netip.AddrPort{}, errUnsupported }

// ListenTProxy is only available on Linux.
func ListenTProxy(network, addr string) (net.Listener, error) { return nil, errUnsupported }
