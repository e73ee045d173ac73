package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The scale commands: `airlock-bench streams` holds many long SSE streams
// through one airlock (the real binary) and measures how late each event
// arrives after the upstream wrote it; `airlock-bench idle` holds many
// idle keep-alive agent connections and measures what each costs.

// scaleEnv is an upstream and a running airlock binary.
type scaleEnv struct {
	dir   string
	up    *upstream
	home  *airlockHome
	p     *binProc
	agent *rawAgent
	host  string // the upstream host:port every tunnel goes to
}

func startScale(bin string, sources int) (*scaleEnv, error) {
	raiseNoFile()
	dir, err := os.MkdirTemp("", "airlock-bench-scale-")
	if err != nil {
		return nil, err
	}
	e := &scaleEnv{dir: dir}
	if e.up, err = startUpstream(dir, 0); err != nil {
		e.close()
		return nil, err
	}
	e.host = e.up.hosts[0]
	if bin, err = buildAirlock(dir, bin); err != nil {
		e.close()
		return nil, err
	}
	if e.home, err = newHome(bin, dir, e.up.caFile, e.up.hosts); err != nil {
		e.close()
		return nil, err
	}
	if e.p, err = serveBinary(e.home, dir, "--max-conns-per-agent", "-1"); err != nil {
		e.close()
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(e.home.dir, "ca.pem"))
	if err != nil {
		e.close()
		return nil, err
	}
	roots, err := rootsFromPEM(caPEM)
	if err != nil {
		e.close()
		return nil, err
	}
	u := &url.URL{Scheme: "http", User: url.UserPassword(benchAgent, e.home.token), Host: e.p.proxy}
	e.agent = newRawAgent(u, roots, sources)
	return e, nil
}

func (e *scaleEnv) close() {
	if e.p != nil {
		e.p.stop()
	}
	if e.up != nil {
		e.up.close()
	}
	_ = os.RemoveAll(e.dir)
}

// rss is airlock's VmRSS and the Go heap in use (KiB).
func (e *scaleEnv) rss() (rssKiB, heapKiB int64) {
	_, rssKiB = procStatusOf(e.p.pid())
	if m, err := e.p.metrics(); err == nil {
		heapKiB = int64(m["go_memstats_heap_inuse_bytes"]) / 1024
	}
	return rssKiB, heapKiB
}

// gcState is the heap goal the last GC set (KiB), the GC count so far
// and the GOGC in force (airlock serve paces it: cmd/internal/gctune).
func (e *scaleEnv) gcState() (goalKiB, cycles, gogc int64) {
	m, err := e.p.metrics()
	if err != nil {
		return 0, 0, 0
	}
	return int64(m["go_memstats_next_gc_bytes"]) / 1024, int64(m["go_gc_duration_seconds_count"]), int64(m["go_gc_gogc_percent"])
}

// liveKiB is the heap live after the last GC, from its goal: with no
// GOMEMLIMIT the goal is live + (live + stacks) × GOGC/100 (globals,
// small, aside).
func liveKiB(goalKiB, gogc, stackKiB int64) int64 {
	if gogc <= 0 {
		return 0
	}
	return (goalKiB*100 - stackKiB*gogc) / (100 + gogc)
}

// writeHeap saves airlock's heap profile to path ("": nothing), taken
// after a forced GC: its inuse_space is what is live at that moment, not
// at the last GC (in a streams run that can be one during the ramp-up,
// with handshakes and buffers in flight).
func (e *scaleEnv) writeHeap(path string) {
	if path == "" {
		return
	}
	b, err := e.p.adminGet("/debug/pprof/heap?gc=1")
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		progress("heap profile: %v", err)
	}
}

// writeGoroutines saves airlock's goroutine profile (debug=1: one entry
// per distinct stack, with counts) to path ("": nothing).
func (e *scaleEnv) writeGoroutines(path string) {
	if path == "" {
		return
	}
	b, err := e.p.adminGet("/debug/pprof/goroutine?debug=1")
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		progress("goroutine profile: %v", err)
	}
}

// stackKiB is airlock's goroutine stack memory in use.
func (e *scaleEnv) stackKiB() int64 {
	m, err := e.p.metrics()
	if err != nil {
		return 0
	}
	return int64(m["go_memstats_stack_inuse_bytes"]) / 1024
}

// openMany opens n tunnels with par parallel openers, calling each(i, t)
// on every tunnel opened; it returns the open errors (the first one kept).
func openMany(n, par int, open func(i int) error) (errs int64, first error) {
	var next atomic.Int64
	var mu sync.Mutex // guards first
	var wg sync.WaitGroup
	var nerr atomic.Int64
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := open(i); err != nil {
					nerr.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return nerr.Load(), first
}

// scaleOptions are the flags streams and idle share.
type scaleOptions struct {
	n, par, sources int
	bin             string
	heapProfile     string
	goroutineFile   string
}

// register declares the shared flags on fs; what names what -n counts,
// opened what -parallel opens at once, and when the moment the profiles
// are taken.
func (o *scaleOptions) register(fs *flag.FlagSet, what, opened, when string) {
	fs.IntVar(&o.n, "n", 10000, what)
	fs.IntVar(&o.par, "parallel", 32, opened)
	fs.IntVar(&o.sources, "sources", 4, "loopback source addresses the agents dial from (127.0.10.1, ...)")
	fs.StringVar(&o.bin, "airlock-bin", "", "use this airlock binary instead of building one")
	fs.StringVar(&o.heapProfile, "heap-profile", "", "write airlock's heap profile (pprof, through the admin port, after a forced GC) "+when+" to `FILE`")
	fs.StringVar(&o.goroutineFile, "goroutine-profile", "", "write airlock's goroutine profile (text) "+when+" to `FILE`")
	fs.StringVar(&proxyCPUs, "proxy-cpus", "", "pin airlock to these CPUs with taskset")
}

type streamsOptions struct {
	scaleOptions
	seconds    int
	cpuProfile string
}

func runStreams(args []string) error {
	o := streamsOptions{}
	fs := flag.NewFlagSet("airlock-bench streams", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs, "concurrent SSE streams", "streams opened at once while ramping up", "mid-run")
	fs.IntVar(&o.seconds, "seconds", 60, "how long every stream is held once all are open (one event per second)")
	fs.StringVar(&o.cpuProfile, "cpu-profile", "", "write a 10 s CPU profile of airlock, taken once the streams are open, to `FILE`")
	if err := parseSub(fs, args); err != nil {
		return err
	}
	e, err := startScale(o.bin, o.sources)
	if err != nil {
		return err
	}
	defer e.close()
	idleRSS, idleHeap := e.rss()
	idleStack := e.stackKiB()
	idleGoal, _, idleGOGC := e.gcState()
	var (
		measuring atomic.Bool
		lat       latSink
		readErrs  atomic.Int64
		wg        sync.WaitGroup
		stop      = make(chan struct{})
	)
	tunnels := make([]*tunnel, o.n)
	progress("streams: opening %d SSE streams through airlock (%d at a time)", o.n, o.par)
	t0 := time.Now()
	openErrs, firstErr := openMany(o.n, o.par, func(i int) error {
		t, err := e.agent.open(i, e.host)
		if err != nil {
			return err
		}
		resp, err := t.get(e.host, "/v1/stream?every=1s")
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("stream: status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
		}
		if err != nil {
			t.close()
			return err
		}
		tunnels[i] = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			readEvents(resp.Body, &measuring, &lat, &readErrs, stop)
		}()
		return nil
	})
	progress("streams: %d open in %.1fs (%d failed; first: %v); measuring for %ds", int64(o.n)-openErrs, time.Since(t0).Seconds(), openErrs, firstErr, o.seconds)
	e.p.resetHWM()
	cpu0 := procCPU(e.p.pid())
	measuring.Store(true)
	if o.cpuProfile != "" {
		go e.p.cpuProfile(o.cpuProfile, 10)
	}
	var midRSS, midHeap, midStack int64
	var midG int
	_, gc0, _ := e.gcState()
	time.AfterFunc(time.Duration(o.seconds)*time.Second/2, func() {
		midRSS, midHeap = e.rss()
		midStack = e.stackKiB()
		midG, _ = e.p.goroutines()
		e.writeHeap(o.heapProfile)
		e.writeGoroutines(o.goroutineFile)
	})
	time.Sleep(time.Duration(o.seconds) * time.Second)
	measuring.Store(false)
	cpu := procCPU(e.p.pid()) - cpu0
	endRSS, endHeap := e.rss()
	endGoal, gc1, gogc := e.gcState()
	endStack := e.stackKiB()
	hwm, _ := procStatusOf(e.p.pid())
	goroutines, _ := e.p.goroutines()
	close(stop)
	for _, t := range tunnels {
		if t != nil {
			t.close()
		}
	}
	wg.Wait()
	open := int64(o.n) - openErrs
	s := lat.summary()
	fmt.Fprintf(stdout, "airlock-bench streams: %d SSE streams through the airlock binary, one event per second each, measured for %d s; %s\n", o.n, o.seconds, machine())
	fmt.Fprintf(stdout, "  errors: %d failed to open (first: %v), %d broke while measured\n", openErrs, firstErr, readErrs.Load())
	fmt.Fprintf(stdout, "  events measured: %d; relay latency (upstream write -> agent read) p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", s.n, s.p50, s.p99, s.max)
	if s.n > 0 {
		fmt.Fprintf(stdout, "  airlock CPU (utime+stime) while measured: %.2f s, %.1f µs per event\n", cpu.Seconds(), float64(cpu.Microseconds())/float64(s.n))
	}
	fmt.Fprintf(stdout, "  airlock RSS: idle %.1f MiB; with the streams: mid-run %.1f MiB, end %.1f MiB, peak %.1f MiB; Go heap in use mid-run %.1f MiB, end %.1f MiB (idle %.1f)\n",
		kib(idleRSS), kib(midRSS), kib(endRSS), kib(hwm), kib(midHeap), kib(endHeap), kib(idleHeap))
	if open > 0 {
		// Per stream: (RSS with the streams - idle RSS) / streams open;
		// "peak" uses the highest RSS while measured (VmHWM, reset once
		// all streams were open), the figure a 10 000-stream RSS budget
		// is judged by.
		fmt.Fprintf(stdout, "  per stream (agent connection + upstream connection): RSS %.1f KiB (peak %.1f KiB), Go heap %.1f KiB, goroutine stacks %.1f KiB, goroutines %.2f (end %.2f)\n",
			float64(midRSS-idleRSS)/float64(open), float64(hwm-idleRSS)/float64(open), float64(midHeap-idleHeap)/float64(open), float64(midStack-idleStack)/float64(open), float64(midG)/float64(open), float64(goroutines)/float64(open))
		fmt.Fprintf(stdout, "  GC: %d cycles while measured, GOGC %d; heap goal at the end %.1f MiB (%.1f KiB per stream), live heap after the last GC %.1f KiB per stream (from the goal)\n",
			gc1-gc0, gogc, kib(endGoal), float64(endGoal-idleGoal)/float64(open), float64(liveKiB(endGoal, gogc, endStack)-liveKiB(idleGoal, idleGOGC, idleStack))/float64(open))
	}
	return nil
}

func kib(k int64) float64 { return float64(k) / 1024 }

// readEvents reads "data: UNIXNANO" events, recording each one's delay
// while measuring is set, until stop or the stream breaks.
func readEvents(body io.ReadCloser, measuring *atomic.Bool, lat *latSink, errs *atomic.Int64, stop chan struct{}) {
	defer body.Close()
	buf := make([]byte, 256)
	var pending []byte
	for {
		n, err := body.Read(buf)
		now := time.Now()
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.Index(pending, []byte("\n\n"))
			if i < 0 {
				break
			}
			ev := pending[:i]
			pending = pending[i+2:]
			if ts, ok := bytes.CutPrefix(ev, []byte("data: ")); ok && measuring.Load() {
				if ns, perr := strconv.ParseInt(string(ts), 10, 64); perr == nil {
					lat.add(now.Sub(time.Unix(0, ns)))
				}
			}
		}
		if err != nil {
			select {
			case <-stop:
			default:
				if measuring.Load() {
					errs.Add(1)
				}
			}
			return
		}
	}
}

// latSink collects latencies from many goroutines.
type latSink struct {
	mu  sync.Mutex // guards lat
	lat []time.Duration
}

func (s *latSink) add(d time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
}

type latSummary struct {
	n             int
	p50, p99, max float64
}

func (s *latSink) summary() latSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := summarise(s.lat, time.Second, 0)
	out := latSummary{n: len(s.lat), p50: l.P50ms, p99: l.P99ms}
	if len(s.lat) > 0 {
		out.max = ms(s.lat[len(s.lat)-1])
	}
	return out
}

type idleOptions struct {
	scaleOptions
	settle      time.Duration
	load        int
	loadSeconds int
	pause       time.Duration
}

func runIdle(args []string) error {
	o := idleOptions{}
	fs := flag.NewFlagSet("airlock-bench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.register(fs, "idle keep-alive agent connections", "connections opened at once", "with the connections open")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "wait after the last connection before measuring")
	fs.IntVar(&o.load, "load", 0, "then, with the idle connections still open, run keep-alive GETs on this many more connections (the GC's price on a large heap)")
	fs.IntVar(&o.loadSeconds, "load-seconds", 20, "how long the --load phase runs")
	fs.DurationVar(&o.pause, "pause", 0, "each --load connection waits this long after each request (past a second its connection parks in between, as an agent's does while it thinks)")
	if err := parseSub(fs, args); err != nil {
		return err
	}
	e, err := startScale(o.bin, o.sources)
	if err != nil {
		return err
	}
	defer e.close()
	// Warm up: leaf minted, upstream pool filled, then the agents leave.
	warm := make([]*tunnel, o.par)
	if errs, first := openMany(o.par, o.par, func(i int) error {
		t, err := e.agent.open(i, e.host)
		if err == nil {
			err = t.getAll(e.host, "/v1/small", 200)
		}
		warm[i] = t
		return err
	}); errs > 0 {
		return fmt.Errorf("warm-up: %w", first)
	}
	for _, t := range warm {
		t.close()
	}
	time.Sleep(o.settle)
	baseRSS, baseHeap := e.rss()
	baseStack := e.stackKiB()
	baseG, _ := e.p.goroutines()
	tunnels := make([]*tunnel, o.n)
	progress("idle: opening %d keep-alive agent connections (one request each, then idle)", o.n)
	errs, first := openMany(o.n, o.par, func(i int) error {
		t, err := e.agent.open(i, e.host)
		if err != nil {
			return err
		}
		tunnels[i] = t
		return t.getAll(e.host, "/v1/small", 200)
	})
	progress("idle: %d open (%d failed); settling %s", o.n, errs, o.settle)
	time.Sleep(o.settle)
	rss, heap := e.rss()
	stack := e.stackKiB()
	g, _ := e.p.goroutines()
	e.writeHeap(o.heapProfile)
	e.writeGoroutines(o.goroutineFile)
	open := int64(o.n) - errs
	var ld loadResult
	if o.load > 0 {
		progress("idle: %d connections of keep-alive GETs for %ds with the idle ones open", o.load, o.loadSeconds)
		ld = loadWhileIdle(e, o.n, o.load, time.Duration(o.loadSeconds)*time.Second, o.pause)
	}
	for _, t := range tunnels {
		if t != nil {
			t.close()
		}
	}
	fmt.Fprintf(stdout, "airlock-bench idle: %d idle keep-alive agent connections through the airlock binary; %s\n", o.n, machine())
	fmt.Fprintf(stdout, "  errors: %d (first: %v)\n", errs, first)
	fmt.Fprintf(stdout, "  airlock RSS %.1f -> %.1f MiB, Go heap in use %.1f -> %.1f MiB, goroutine stacks %.1f -> %.1f MiB, goroutines %d -> %d\n",
		kib(baseRSS), kib(rss), kib(baseHeap), kib(heap), kib(baseStack), kib(stack), baseG, g)
	if open > 0 {
		fmt.Fprintf(stdout, "  per idle connection: RSS %.1f KiB, Go heap %.1f KiB, stacks %.1f KiB, goroutines %.2f\n",
			float64(rss-baseRSS)/float64(open), float64(heap-baseHeap)/float64(open), float64(stack-baseStack)/float64(open), float64(g-baseG)/float64(open))
	}
	if o.load > 0 {
		ld.print(o.load, o.pause)
	}
	return nil
}

// loadResult is what the --load phase of idle measured.
type loadResult struct {
	requests, errs int64
	first          error
	elapsed, cpu   time.Duration
	gcs, gogc      int64
	rssKiB         int64 // peak RSS while loaded
}

// loadWhileIdle runs conc connections of keep-alive GETs for d, each
// pausing pause after every request (their source addresses follow the
// idle ones'), and measures airlock's CPU and GC cycles meanwhile.
func loadWhileIdle(e *scaleEnv, base, conc int, d, pause time.Duration) loadResult {
	var r loadResult
	var reqs, nerr atomic.Int64
	var mu sync.Mutex // guards r.first
	var wg sync.WaitGroup
	e.p.resetHWM()
	_, gc0, _ := e.gcState()
	cpu0, t0 := procCPU(e.p.pid()), time.Now()
	deadline := t0.Add(d)
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := e.agent.open(base+i, e.host)
			for err == nil && time.Now().Before(deadline) {
				if err = t.getAll(e.host, "/v1/small", 200); err == nil {
					reqs.Add(1)
					time.Sleep(pause)
				}
			}
			if t != nil {
				t.close()
			}
			if err != nil {
				nerr.Add(1)
				mu.Lock()
				if r.first == nil {
					r.first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.elapsed, r.cpu = time.Since(t0), procCPU(e.p.pid())-cpu0
	_, gc1, gogc := e.gcState()
	r.gcs, r.gogc = gc1-gc0, gogc
	r.rssKiB, _ = procStatusOf(e.p.pid())
	r.requests, r.errs = reqs.Load(), nerr.Load()
	return r
}

func (r loadResult) print(conc int, pause time.Duration) {
	paced := ""
	if pause > 0 {
		paced = ", " + pause.String() + " apart on each"
	}
	fmt.Fprintf(stdout, "  under load (%d more connections of keep-alive GETs%s, %.1f s): %d requests (%.0f/s), %d errors (first: %v)\n",
		conc, paced, r.elapsed.Seconds(), r.requests, float64(r.requests)/r.elapsed.Seconds(), r.errs, r.first)
	if r.requests > 0 {
		fmt.Fprintf(stdout, "  airlock CPU under load %.2f s, %.1f µs per request; GC: %d cycles (%.2f/s), GOGC %d; peak RSS %.1f MiB\n",
			r.cpu.Seconds(), float64(r.cpu.Microseconds())/float64(r.requests), r.gcs, float64(r.gcs)/r.elapsed.Seconds(), r.gogc, kib(r.rssKiB))
	}
}

// parseSub parses a subcommand's flags; positional arguments are errors.
func parseSub(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return nil
}
