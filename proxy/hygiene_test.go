package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/airlock/airlock/vault"
)

func TestLoopDetected(t *testing.T) {
	cases := map[string]struct {
		via  []string
		loop bool
	}{
		"no via":          {},
		"other proxies":   {via: []string{"1.1 squid, 1.0 fred"}},
		"airlock":         {via: []string{viaAirlock}, loop: true},
		"airlock in list": {via: []string{"1.1 squid", "HTTP/1.1 AIRLOCK (x)"}, loop: true},
		"airlock folded":  {via: []string{"1.0 fred, 1.1 airlock"}, loop: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.Header["Via"] = tc.via
			e := loopDetected(r)
			if (e != nil) != tc.loop || e != nil && (e.Status != http.StatusLoopDetected || e.Code != CodeLoopDetected) {
				t.Errorf("loopDetected = %v, want loop %v", e, tc.loop)
			}
		})
	}
}

func TestOutboundHygiene(t *testing.T) {
	r, _ := http.NewRequest("GET", "https://x/", nil)
	r.Header.Set("Accept-Encoding", "br, gzip")
	outboundHygiene(r, &decision{})
	if r.Header.Get("Via") != viaAirlock || r.Header.Get("Accept-Encoding") != "br, gzip" {
		t.Errorf("no credential: %v", r.Header)
	}
	outboundHygiene(r, &decision{cred: testCred()})
	if r.Header.Get("Accept-Encoding") != "identity" {
		t.Errorf("credential: Accept-Encoding %q", r.Header.Get("Accept-Encoding"))
	}
}

func TestIsSelf(t *testing.T) {
	s := testServer()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s.listeners = append(s.listeners, l)
	s.ProtectAddr(&net.TCPAddr{IP: net.IPv4zero, Port: 7700})
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	cases := map[string]struct {
		ip   netip.Addr
		port uint16
		self bool
	}{
		"proxy listener":                {ip: lo, port: port, self: true},
		"v4-mapped listener":            {ip: netip.MustParseAddr("::ffff:127.0.0.1"), port: port, self: true},
		"other port":                    {ip: lo, port: port + 1},
		"admin on 0.0.0.0 via loopback": {ip: netip.MustParseAddr("127.0.0.2"), port: 7700, self: true},
		"admin port elsewhere":          {ip: netip.MustParseAddr("203.0.113.9"), port: 7700},
	}
	for name, tc := range cases {
		if got := s.isSelf(tc.ip, tc.port); got != tc.self {
			t.Errorf("%s: isSelf = %v, want %v", name, got, tc.self)
		}
	}
}

func TestConnCounter(t *testing.T) {
	c := connCounter{max: 2}
	r1, ok1 := c.acquire("bot")
	_, ok2 := c.acquire("bot")
	_, ok3 := c.acquire("bot")
	_, okOther := c.acquire("other")
	if !ok1 || !ok2 || ok3 || !okOther {
		t.Fatalf("acquire: %v %v %v %v", ok1, ok2, ok3, okOther)
	}
	r1()
	r1() // idempotent
	if _, ok := c.acquire("bot"); !ok {
		t.Error("slot not released")
	}
	if _, ok := c.acquire("bot"); ok {
		t.Error("double release freed two slots")
	}
}

func testCred() *vault.Credential {
	return &vault.Credential{Path: "test/key", Value: vault.NewSecret([]byte(testSecret))}
}
