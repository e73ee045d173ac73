package certs

import (
	"crypto/tls"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMintCold mints a leaf for a new host each iteration.
func BenchmarkMintCold(b *testing.B) {
	c := NewCache(testCA(b), DefaultMaxEntries)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Get("h" + strconv.Itoa(i) + ".example"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCacheHit serves one cached leaf, as for repeat CONNECTs.
func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(testCA(b), 10)
	if _, err := c.Get("api.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get("api.example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheHitParallel is BenchmarkCacheHit from all Ps at once.
func BenchmarkCacheHitParallel(b *testing.B) {
	c := NewCache(testCA(b), 10)
	if _, err := c.Get("api.example.com"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get("api.example.com"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTLSConfig is the per-CONNECT cost of building the server config.
func BenchmarkTLSConfig(b *testing.B) {
	c := NewCache(testCA(b), 10)
	b.ReportAllocs()
	for b.Loop() {
		configSink = c.TLSConfig("api.example.com:443")
	}
}

var configSink *tls.Config

// BenchmarkNewCA creates a CA (done once, at init).
func BenchmarkNewCA(b *testing.B) {
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewCA("bench", now); err != nil {
			b.Fatal(err)
		}
	}
}
