package certs

import (
	"sync/atomic"
	"testing"
	"time"
)

// Prewarm mints once in the background; the handshake's Get joins or
// finds it; a second Prewarm of a cached host does nothing. Lookups count
// only Gets, and misses still equal mints.
func TestPrewarm(t *testing.T) {
	ca, err := NewCA("prewarm test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(ca, 10)
	var hits, misses atomic.Int64
	c.OnLookup = func(hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}
	c.Prewarm("api.example.com")
	c.Prewarm("api.example.com") // in flight or cached: no second mint
	cert, err := c.Get("api.example.com")
	if err != nil || cert.Leaf.DNSNames[0] != "api.example.com" {
		t.Fatalf("Get: %v %v", cert, err)
	}
	c.Prewarm("api.example.com")
	c.Prewarm("bad host name!") // ignored
	for deadline := time.Now().Add(5 * time.Second); misses.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the prewarm mint never finished")
		}
	}
	if c.Mints() != 1 || misses.Load() != 1 || hits.Load() != 1 {
		t.Fatalf("mints %d, misses %d, hits %d; want 1, 1, 1", c.Mints(), misses.Load(), hits.Load())
	}
}
