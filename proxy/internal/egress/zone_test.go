package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/errcode"
)

// zonedForms returns zoned spellings of an address inside p: the v6 address
// itself with a named and a numeric zone, or for a v4 network its
// v4-mapped and NAT64 forms with a zone.
func zonedForms(p netip.Prefix) []string {
	a := p.Addr()
	if a.Is4() {
		v4 := a.Next().String()
		return []string{"::ffff:" + v4 + "%eth0", "::ffff:" + v4 + "%1", "64:ff9b::" + v4 + "%eth0"}
	}
	return []string{a.String() + "%eth0", a.String() + "%lo", a.String() + "%1", a.Next().String() + "%eth0"}
}

// TestForbiddenZoned: a zone must never carry an address out of a
// forbidden network (netip.Prefix.Contains is false for zoned addresses).
func TestForbiddenZoned(t *testing.T) {
	cases := map[string]bool{
		"fe80::1%eth0":             true,
		"fd00:ec2::254%eth0":       true, // IPv6 cloud metadata
		"::1%lo":                   true,
		"::1%1":                    true,
		"::1%25lo":                 true, // the %25 of a URL left undecoded
		"::ffff:127.0.0.1%eth0":    true,
		"::ffff:169.254.169.254%1": true,
		"fc00::1%eth0":             true,
		"ff02::1%eth0":             true,
		"::%lo":                    true,
		"2606:4700::1111%eth0":     true, // zoned but public: refused too, zones are local
	}
	for _, p := range forbidden {
		for _, f := range zonedForms(p) {
			cases[f] = true
		}
	}
	for ip, want := range cases {
		t.Run(ip, func(t *testing.T) {
			a := netip.MustParseAddr(ip)
			if got := Forbidden(a); got != want {
				t.Errorf("Forbidden(%s) = %v, want %v", ip, got, want)
			}
			if allowedIP(a, nil) {
				t.Errorf("allowedIP(%s, none) = true", ip)
			}
			// An exemption for the network does not exempt its zoned forms.
			all := []netip.Prefix{netip.MustParsePrefix("::/0"), netip.MustParsePrefix("0.0.0.0/0")}
			if allowedIP(a, all) {
				t.Errorf("allowedIP(%s, everything) = true", ip)
			}
		})
	}
}

// TestDialerRefusesZoned plays the agent: a listener on ::1 must receive
// nothing when the destination names it with a zone, with and without
// ::1/128 in egress.allow_networks.
func TestDialerRefusesZoned(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for name, allow := range map[string][]netip.Prefix{
		"no exemption":     nil,
		"::1/128 exempted": {netip.MustParsePrefix("::1/128")},
	} {
		for _, host := range []string{"::1%lo", "::1%1", "::1%25lo", "::ffff:127.0.0.1%lo", "0:0:0:0:0:0:0:1%lo"} {
			t.Run(name+"/"+host, func(t *testing.T) {
				d := NewDialer(func() []netip.Prefix { return allow })
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
				if err == nil {
					c.Close()
				}
				var e *errcode.Error
				if !errors.As(err, &e) || e.Code != errcode.EgressBlocked {
					t.Fatalf("dial [%s]:%s: err %v, want EGRESS_BLOCKED", host, port, err)
				}
			})
		}
	}
	// The unzoned address is reachable when exempted: the listener works.
	d := NewDialer(func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("::1/128")} })
	c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("::1", port))
	if err != nil {
		t.Fatalf("control dial [::1]:%s: %v", port, err)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for accepted.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("listener on ::1 accepted %d connections, want only the control one", n)
	}
}
