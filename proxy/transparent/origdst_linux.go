//go:build linux

package transparent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h
// (same value as SO_ORIGINAL_DST, at SOL_IPV6); x/sys does not export it.
const ip6tSOOriginalDst = unix.SO_ORIGINAL_DST

// OriginalDst returns the destination a REDIRECT or DNAT rule rewrote,
// from conntrack via SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6).
// A connection no NAT rule touched reports its own local address.
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination: %T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	v6 := addrPortOf(c.LocalAddr()).Addr().Unmap().Is6()
	var dst netip.AddrPort
	var serr error
	cerr := rc.Control(func(fd uintptr) { dst, serr = origDstFD(int(fd), v6) })
	if err := errors.Join(cerr, serr); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination: %w", err)
	}
	return dst, nil
}

func origDstFD(fd int, v6 bool) (netip.AddrPort, error) {
	if !v6 {
		// sockaddr_in fits in the 16 leading bytes of an ip_mreqn-sized buffer.
		m, err := unix.GetsockoptIPv6Mreq(fd, unix.IPPROTO_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST: %w", err)
		}
		port := binary.BigEndian.Uint16(m.Multiaddr[2:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), port), nil
	}
	// sockaddr_in6 (28 bytes) fits in IPv6MTUInfo (32 bytes).
	i, err := unix.GetsockoptIPv6MTUInfo(fd, unix.IPPROTO_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("IP6T_SO_ORIGINAL_DST: %w", err)
	}
	p := (*[2]byte)(unsafe.Pointer(&i.Addr.Port)) // network byte order in memory
	port := binary.BigEndian.Uint16(p[:])
	return netip.AddrPortFrom(netip.AddrFrom16(i.Addr.Addr), port), nil
}

// ListenTProxy listens on addr ("tcp", "tcp4" or "tcp6") with
// IP_TRANSPARENT set, as TPROXY rules need; use it with Config.TProxy.
func ListenTProxy(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if network == "tcp6" {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				return
			}
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s with IP_TRANSPARENT (needs CAP_NET_ADMIN): %w", addr, err)
	}
	return ln, nil
}
