package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// `airlock-bench soak` runs a mixed load through the airlock binary for a
// while: plain requests, SSE streams, WebSocket echoes and requests the
// policy denies (on purpose: they must be refused 403, and are counted
// apart), with a policy reload every 10 s and a `vault set` every 30 s. It
// samples airlock's RSS and goroutines (pprof's goroutine profile through
// the admin port) and checks that the goroutines return to their idle
// level once the load stops.

type soakOptions struct {
	minutes     float64
	conc        int
	bin         string
	reloadEvery time.Duration
	vaultEvery  time.Duration
}

// soakCounts are what the workers did.
type soakCounts struct {
	plain, sse, ws, denied atomic.Int64
	errs                   atomic.Int64
	mu                     sync.Mutex // guards firstErr
	firstErr               error
}

func (c *soakCounts) fail(err error) {
	c.errs.Add(1)
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

func runSoak(args []string) error {
	o := soakOptions{}
	fs := flag.NewFlagSet("airlock-bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&o.minutes, "minutes", 20, "how long the load runs")
	fs.IntVar(&o.conc, "concurrency", 50, "concurrent agent workers, each on its own keep-alive connection")
	fs.DurationVar(&o.reloadEvery, "reload-every", 10*time.Second, "policy rewrite + reload (SIGHUP) interval")
	fs.DurationVar(&o.vaultEvery, "vault-every", 30*time.Second, "`airlock vault set` interval")
	fs.StringVar(&o.bin, "airlock-bin", "", "use this airlock binary instead of building one")
	fs.StringVar(&proxyCPUs, "proxy-cpus", "", "pin airlock to these CPUs with taskset")
	if err := parseSub(fs, args); err != nil {
		return err
	}
	if o.minutes <= 0 || o.conc < 1 {
		return errors.New("--minutes and --concurrency must be positive")
	}
	e, err := startScale(o.bin, 1)
	if err != nil {
		return err
	}
	defer e.close()
	idleG, _ := e.p.goroutines()
	idleRSS, _ := e.rss()
	progress("soak: %.1f min at c=%d; idle airlock: %d goroutines, RSS %.1f MiB", o.minutes, o.conc, idleG, kib(idleRSS))
	var c soakCounts
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range o.conc {
		wg.Add(1)
		go func() { defer wg.Done(); soakWorker(e, w, &c, stop) }()
	}
	reloads, vaultSets, opErrs := soakOps(e, o, stop)
	samples := soakSample(e, o, &c)
	close(stop)
	wg.Wait()
	n := <-reloads
	v := <-vaultSets
	progress("soak: load stopped; waiting for airlock's goroutines to return to the idle level (%d)", idleG)
	endG, waited := waitGoroutines(e, idleG, 150*time.Second)
	m, _ := e.p.metrics()
	fmt.Fprintf(stdout, "airlock-bench soak: %.1f min at c=%d through the airlock binary; %s\n", o.minutes, o.conc, machine())
	fmt.Fprintf(stdout, "  done: %d plain requests, %d SSE streams, %d WebSocket sessions, %d denied on purpose (403 ACCESS_DENIED as expected)\n",
		c.plain.Load(), c.sse.Load(), c.ws.Load(), c.denied.Load())
	fmt.Fprintf(stdout, "  policy reloads: %d sent, %.0f succeeded (airlock_policy_reloads_total); vault sets: %d; operation errors: %v\n",
		n, m[`airlock_policy_reloads_total{result="success"}`], v, <-opErrs)
	fmt.Fprintf(stdout, "  errors: %d (first: %v)\n", c.errs.Load(), c.firstErr)
	for _, s := range samples {
		fmt.Fprintf(stdout, "  t=%5.0fs RSS %6.1f MiB goroutines %5d\n", s.at.Seconds(), kib(s.rssKiB), s.goroutines)
	}
	if len(samples) > 0 {
		var ref sample
		for _, s := range samples {
			if s.at >= time.Minute || ref.rssKiB == 0 {
				ref = s
				if s.at >= time.Minute {
					break
				}
			}
		}
		last := samples[len(samples)-1]
		fmt.Fprintf(stdout, "  RSS growth after the first minute: %.1f -> %.1f MiB (%+.1f %%)\n",
			kib(ref.rssKiB), kib(last.rssKiB), 100*float64(last.rssKiB-ref.rssKiB)/float64(max(1, ref.rssKiB)))
	}
	fmt.Fprintf(stdout, "  goroutines: idle %d, at the end %d (after %.0fs without load)\n", idleG, endG, waited.Seconds())
	return nil
}

// soakWorker runs the mix on its own tunnel, reopened after a WebSocket
// (which ends the tunnel) or an error: 85 % plain, 6 % SSE, 6 % WebSocket,
// 3 % denied.
func soakWorker(e *scaleEnv, w int, c *soakCounts, stop chan struct{}) {
	var t *tunnel
	defer func() {
		if t != nil {
			t.close()
		}
	}()
	for i := w; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if t == nil {
			var err error
			if t, err = e.agent.open(w, e.host); err != nil {
				c.fail(err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		var err error
		switch k := i % 100; {
		case k < 6:
			err = t.getAll(e.host, "/v1/sse", 200)
			c.sse.Add(1)
		case k < 12:
			err = t.wsRoundTrips(e.host, "/v1/ws", 5)
			c.ws.Add(1)
			t.close()
			t = nil
		case k < 15:
			err = t.getAll(e.host, "/v2/denied", http.StatusForbidden)
			c.denied.Add(1)
		default:
			err = t.getAll(e.host, "/v1/small", 200)
			c.plain.Add(1)
		}
		if err != nil {
			c.fail(err)
			if t != nil {
				t.close()
				t = nil
			}
		}
	}
}

// soakOps rewrites the policy (and signals a reload) and sets the vault
// credential on their intervals until stop; it sends the counts when done.
func soakOps(e *scaleEnv, o soakOptions, stop chan struct{}) (reloads, vaultSets chan int, errs chan error) {
	reloads, vaultSets, errs = make(chan int, 1), make(chan int, 1), make(chan error, 1)
	go func() {
		rt, vt := time.NewTicker(o.reloadEvery), time.NewTicker(o.vaultEvery)
		defer rt.Stop()
		defer vt.Stop()
		var r, v int
		var all []error
		for {
			select {
			case <-stop:
				reloads <- r
				vaultSets <- v
				errs <- errors.Join(all...)
				return
			case <-rt.C:
				r++
				if err := e.home.writePolicy(e.up.hosts, r); err != nil {
					all = append(all, err)
				} else if err := e.p.reload(); err != nil {
					all = append(all, err)
				}
			case <-vt.C:
				v++
				if err := e.home.vaultSet(fmt.Sprintf("sk-bench-rotated-%d-%s", v, hexString(randomBytes(8)))); err != nil {
					all = append(all, err)
				}
			}
		}
	}()
	return reloads, vaultSets, errs
}

type sample struct {
	at         time.Duration
	rssKiB     int64
	goroutines int
}

// soakSample samples RSS and goroutines every 10 s for the run's length.
func soakSample(e *scaleEnv, o soakOptions, c *soakCounts) []sample {
	start := time.Now()
	end := start.Add(time.Duration(o.minutes * float64(time.Minute)))
	var out []sample
	for now := time.Now(); now.Before(end); now = time.Now() {
		time.Sleep(min(10*time.Second, end.Sub(now)))
		rss, _ := e.rss()
		g, _ := e.p.goroutines()
		out = append(out, sample{at: time.Since(start), rssKiB: rss, goroutines: g})
		progress("soak: t=%.0fs RSS %.1f MiB goroutines %d requests %d errors %d", time.Since(start).Seconds(), kib(rss), g,
			c.plain.Load()+c.sse.Load()+c.ws.Load()+c.denied.Load(), c.errs.Load())
	}
	return out
}

// waitGoroutines polls until airlock's goroutines are back to idle (+2
// for the admin scrape itself) or timeout passes.
func waitGoroutines(e *scaleEnv, idle int, timeout time.Duration) (int, time.Duration) {
	start := time.Now()
	for {
		g, err := e.p.goroutines()
		if err == nil && g <= idle+2 || time.Since(start) > timeout {
			return g, time.Since(start)
		}
		time.Sleep(time.Second)
	}
}

func rootsFromPEM(pem []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in PEM")
	}
	return p, nil
}
