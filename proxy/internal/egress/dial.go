// Package egress is airlock's guarded Dialer: it resolves a destination
// once, drops forbidden networks (loopback, private, link-local, CGNAT,
// unless egress.allow_networks lists them) and airlock's own listeners,
// and dials the checked addresses directly or through the corporate
// upstream proxy (CONNECT to the checked IP).
package egress

import (
	"context"
	"errors"
	"fmt"
	"github.com/airlock/airlock/proxy/errcode"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// forbidden lists the networks the dial guard refuses unless a policy's
// egress.allow_networks exempts them: an agent must not reach the machine's
// own services or the private network through airlock (SSRF).
var forbidden = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 (embeds v4)
	netip.MustParsePrefix("64:ff9b:1::/48"), // local NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4 (embeds v4)
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// ErrBlocked is returned (wrapped) when no address of a destination
// may be dialled.
var ErrBlocked = errors.New("destination resolves only to forbidden networks")

// Forbidden reports whether ip is in a network the guard refuses, ignoring
// exemptions. v4-mapped v6 addresses are judged as v4.
//
// Every address with an IPv6 zone ("fe80::1%eth0", "::1%lo", "::1%1") is
// forbidden, whatever its network and whatever egress.allow_networks says:
// [netip.Prefix.Contains] is false for any zoned address, so a zone would
// otherwise carry a loopback, link-local or unique-local address (the
// metadata service's fd00:ec2::254 included) past every prefix. Zones name
// an interface of this machine; no public destination needs one.
func Forbidden(ip netip.Addr) bool {
	if ip.Zone() != "" {
		return true
	}
	ip = ip.Unmap()
	for _, p := range forbidden {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func allowedIP(ip netip.Addr, allow []netip.Prefix) bool {
	if ip.Zone() != "" { // refused outright, exemptions included (see Forbidden)
		return false
	}
	ip = ip.Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return !Forbidden(ip)
}

// Dialer resolves a name once, drops forbidden addresses and dials only the
// checked ones, in resolver order: there is no second lookup a DNS rebinding
// attack could change.
type Dialer struct {
	net      net.Dialer
	resolver *net.Resolver
	allow    func() []netip.Prefix                 // current egress.allow_networks
	Self     func(ip netip.Addr, port uint16) bool // airlock's own listeners; nil: none
	Via      func() (*UpstreamProxy, error)        // egress.upstream_proxy; nil: direct
}

func NewDialer(allow func() []netip.Prefix) *Dialer {
	return &Dialer{
		net:      net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		resolver: net.DefaultResolver,
		allow:    allow,
	}
}

// CheckedAddrs resolves host and returns the addresses the guard allows.
func (d *Dialer) CheckedAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, zonedBlocked(host)
		}
		ips = []netip.Addr{ip}
	} else {
		ips, err = d.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	allow := d.allow()
	ok := ips[:0:0]
	for _, ip := range ips {
		if allowedIP(ip, allow) {
			ok = append(ok, ip.Unmap())
		}
	}
	if len(ok) == 0 {
		return nil, egressBlocked(fmt.Sprintf("%s (resolved to %s)", host, joinAddrs(ips))) // names what was refused
	}
	return ok, nil
}

func egressBlocked(host string) *errcode.Error {
	e := errcode.New(http.StatusForbidden, errcode.EgressBlocked,
		fmt.Sprintf("%s: %v", host, ErrBlocked),
		"loopback, private, link-local and CGNAT addresses are refused; list the network in egress.allow_networks if this is intended")
	return e
}

func zonedBlocked(host string) *errcode.Error {
	return errcode.New(http.StatusForbidden, errcode.EgressBlocked,
		fmt.Sprintf("%s: an IPv6 zone (%%interface) names this machine's own network: %v", host, ErrBlocked),
		"addresses with a zone are always refused, egress.allow_networks included; send the request to the host's name or its address without a zone")
}

// DialContext is an http.Transport dial function with the SSRF guard.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	ips, err := d.CheckedAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	if d.Self != nil && slices.ContainsFunc(ips, func(ip netip.Addr) bool { n, _ := strconv.Atoi(port); return d.Self(ip, uint16(n)) }) {
		return nil, errcode.New(http.StatusLoopDetected, errcode.LoopDetected, "destination "+addr+" is airlock's own listener",
			"airlock does not proxy to itself; send the request to the real upstream")
	}
	if up, err := d.viaProxy(); err != nil || up != nil { // egress.upstream_proxy (upstreamcache.go)
		if err != nil {
			return nil, err
		}
		return up.dial(ctx, &d.net, ips, port)
	}
	var firstErr error
	for _, ip := range ips {
		c, err := d.net.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s: %w", net.JoinHostPort(host, port), firstErr)
}

// HostPort splits "host:port" with a default port.
func HostPort(hostport string, defPort int) (string, int) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return trimBrackets(hostport), defPort
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return host, -1
	}
	return host, n
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// joinAddrs lists the refused addresses of an EGRESS_BLOCKED message.
func joinAddrs(ips []netip.Addr) string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return strings.Join(out, ", ")
}
