package redisstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Benchmarks of the rate-limit check at 50 concurrent callers: the local
// token bucket airlock uses today against the shared GCRA in a real
// redis-server on loopback, one call per request (direct) or pipelined
// (batched). "Gated" wraps each in a loopback HTTPS request, the shape of
// a proxied request, to show the throughput cost per request.
//
//	go test -run '^$' -bench . -benchtime 3s ./proxy/state/redisstore/

const benchConc = 50

type allowFunc func(ctx context.Context, key string) bool

// localLimits is the local store's shape: a mutex-guarded map of
// x/time/rate buckets.
func localLimits() allowFunc {
	var mu sync.Mutex
	m := map[string]*rate.Limiter{}
	return func(_ context.Context, key string) bool {
		mu.Lock()
		l := m[key]
		if l == nil {
			l = rate.NewLimiter(1e9, 1e9)
			m[key] = l
		}
		mu.Unlock()
		return l.Allow()
	}
}

func redisLimits(b *testing.B, noBatch bool) allowFunc {
	s := newStores(b, startRedis(b), 1, Options{NoBatch: noBatch})[0]
	return func(ctx context.Context, key string) bool {
		ok, _, err := s.Allow(ctx, key, 1e9, 1e9)
		if err != nil {
			b.Error(err)
		}
		return ok
	}
}

func benchModes(b *testing.B, run func(b *testing.B, allow allowFunc)) {
	b.Run("local", func(b *testing.B) { run(b, localLimits()) })
	b.Run("redis-batched", func(b *testing.B) { run(b, redisLimits(b, false)) })
	b.Run("redis-direct", func(b *testing.B) { run(b, redisLimits(b, true)) })
}

func parallel50(b *testing.B, fn func(i int)) {
	b.SetParallelism((benchConc + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var n atomic.Int64
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1))
		for pb.Next() {
			fn(i)
		}
	})
	b.StopTimer()
	// CPU this process (client and HTTP server, not redis-server) spent
	// per op: the cost on the proxy's host when Redis runs elsewhere.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAllow is the check alone.
func BenchmarkAllow(b *testing.B) {
	benchModes(b, func(b *testing.B, allow allowFunc) {
		ctx := context.Background()
		parallel50(b, func(i int) { allow(ctx, fmt.Sprintf("agent-%d/rule", i%10)) })
	})
}

// BenchmarkGated is one loopback HTTPS request (keep-alive, 181-byte
// answer) per op whose handler runs the check first.
func BenchmarkGated(b *testing.B) {
	body := make([]byte, 181)
	benchModes(b, func(b *testing.B, allow allowFunc) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !allow(r.Context(), r.URL.Query().Get("a")+"/rule") {
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			_, _ = w.Write(body)
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		defer srv.Close()
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		tr.MaxIdleConnsPerHost = benchConc
		tr.MaxConnsPerHost = benchConc
		c := &http.Client{Transport: tr}
		defer tr.CloseIdleConnections()
		var warm sync.WaitGroup // open the 50 connections before timing
		for range benchConc {
			warm.Add(1)
			go func() {
				defer warm.Done()
				if resp, err := c.Get(srv.URL + "/?a=warm"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		warm.Wait()
		parallel50(b, func(i int) {
			resp, err := c.Get(fmt.Sprintf("%s/?a=agent-%d", srv.URL, i%10))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	})
}
