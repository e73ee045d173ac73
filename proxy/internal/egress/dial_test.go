package egress

import (
	"context"
	"errors"
	"github.com/airlock/airlock/proxy/errcode"
	"net"
	"net/netip"
	"testing"
)

func TestForbidden(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1": true, "127.8.9.10": true, "::1": true, "10.1.2.3": true, "172.16.0.1": true,
		"172.31.255.255": true, "192.168.1.1": true, "169.254.169.254": true, "100.64.0.1": true,
		"0.0.0.0": true, "::": true, "224.0.0.1": true, "ff02::1": true, "fe80::1": true, "fd00::1": true,
		"::ffff:127.0.0.1": true, "::ffff:10.0.0.1": true, "255.255.255.255": true,
		"8.8.8.8": false, "1.1.1.1": false, "2606:4700::1111": false, "172.32.0.1": false, "100.128.0.1": false,
	}
	for ip, want := range cases {
		t.Run(ip, func(t *testing.T) {
			if got := Forbidden(netip.MustParseAddr(ip)); got != want {
				t.Errorf("Forbidden(%s) = %v, want %v", ip, got, want)
			}
		})
	}
}

func TestDialerAllowNetworks(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	cases := map[string]struct {
		allow   []netip.Prefix
		addr    string
		blocked bool
	}{
		"loopback refused":            {nil, "127.0.0.1:" + port, true},
		"localhost refused":           {nil, "localhost:" + port, true},
		"mapped v6 refused":           {nil, "[::ffff:127.0.0.1]:" + port, true},
		"loopback allowed by network": {[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "127.0.0.1:" + port, false},
		"localhost falls back to v4":  {[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, "localhost:" + port, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := NewDialer(func() []netip.Prefix { return tc.allow })
			c, err := d.DialContext(context.Background(), "tcp", tc.addr)
			var e *errcode.Error
			if blocked := errors.As(err, &e) && e.Code == errcode.EgressBlocked; blocked != tc.blocked {
				t.Fatalf("dial %s: err %v, want blocked=%v", tc.addr, err, tc.blocked)
			}
			if err == nil {
				c.Close()
			}
		})
	}
}
