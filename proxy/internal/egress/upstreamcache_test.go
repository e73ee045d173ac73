package egress

import (
	"errors"
	"testing"
)

// TestProxyCache: the cache parses a setting once, follows a change, and
// keeps a bad setting's error (never a proxy to dial).
func TestProxyCache(t *testing.T) {
	var c ProxyCache
	if up, err := c.Parse(""); up != nil || err != nil {
		t.Fatalf("empty setting: %v, %v; want nil, nil", up, err)
	}
	a, err := c.Parse("http://proxy.corp:3128")
	if err != nil || a.Addr != "proxy.corp:3128" {
		t.Fatalf("got %+v, %v", a, err)
	}
	if again, _ := c.Parse("http://proxy.corp:3128"); again != a {
		t.Fatal("the same setting was parsed again")
	}
	b, err := c.Parse("http://other.corp:8080")
	if err != nil || b == a || b.Addr != "other.corp:8080" {
		t.Fatalf("a changed setting gave %+v, %v", b, err)
	}
	for range 2 { // the error is cached too
		if up, err := c.Parse("socks5://proxy:1080"); up != nil || !errors.Is(err, ErrUpstreamProxy) {
			t.Fatalf("bad setting: %v, %v; want ErrUpstreamProxy", up, err)
		}
	}
}
