package deep

import (
	"sync"
	"testing"
	"time"
)

func TestWorkersAreReused(t *testing.T) {
	p := New(4, time.Minute)
	var wg sync.WaitGroup
	for range 100 { // one at a time: a worker back from the last job takes the next
		wg.Add(1)
		p.Go(wg.Done)
		wg.Wait()
	}
	// A job may come before the worker of the last one is back waiting:
	// then a second worker starts. Never more than the bound.
	if n := p.made.Load(); n > 4 {
		t.Fatalf("100 jobs one after another started %d goroutines, want at most the pool's 4", n)
	}
}

// TestGoNeverWaits: with every worker busy (a slow handshake, an agent
// that sends its ClientHello a byte a second), a job runs at once on a
// goroutine of its own, and the pool stays bounded.
func TestGoNeverWaits(t *testing.T) {
	p := New(2, time.Minute)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	for range 10 {
		p.Go(func() { started <- struct{}{}; <-release })
	}
	for i := range 10 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("job %d of 10 did not start while the pool's 2 workers were busy", i+1)
		}
	}
	if n := p.Workers(); n != 2 {
		t.Errorf("%d workers, want the bound 2", n)
	}
	close(release)
}

func TestIdleWorkersExit(t *testing.T) {
	p := New(4, 20*time.Millisecond)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	waitFor(t, func() bool { return p.Workers() == 0 })
	ran := make(chan struct{})
	p.Go(func() { close(ran) }) // a new worker after the last one left
	<-ran
}

func TestNilPool(t *testing.T) {
	var p *Pool
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// deepJob needs about 64 KiB of stack, as a TLS handshake does.
//
//go:noinline
func deepJob(n int) byte {
	var pad [512]byte
	pad[n%512] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deepJob(n-1) + pad[n%512]
}

// BenchmarkDeepJob compares a deep job on a new goroutine (its stack grown
// by copying, 8 → 64 KiB) with one on a worker that kept its stack.
func BenchmarkDeepJob(b *testing.B) {
	for _, bc := range []struct {
		name string
		run  func(func())
	}{
		{"goroutine", func(f func()) { go f() }},
		{"worker", New(4, time.Minute).Go},
	} {
		b.Run(bc.name, func(b *testing.B) {
			done := make(chan struct{})
			for b.Loop() {
				bc.run(func() { deepJob(120); done <- struct{}{} })
				<-done
			}
		})
	}
}
