package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// bench runs the whole measurement and returns the report.
func bench(o *options) (*report, error) {
	dir, err := os.MkdirTemp("", "airlock-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	up, err := startUpstream(dir, o.newHosts)
	if err != nil {
		return nil, err
	}
	defer up.close()
	targets, stop, err := startTargets(o, dir, up)
	if err != nil {
		return nil, err
	}
	defer stop()
	rep := &report{Machine: machine(), Requests: o.requests, AuditChain: o.auditChain, Airlock: o.airlockMode, ProxyCPUs: proxyCPUs}
	base := "https://" + up.hosts[0] + "/v1"
	maxConc := slices.Max(o.concurrency)
	for _, c := range o.concurrency {
		lv, err := runLevel(o, targets, base, c, c == maxConc)
		if err != nil {
			return nil, err
		}
		rep.Levels = append(rep.Levels, lv)
	}
	if err := rep.probe(o, targets, base, up.hosts[1:]); err != nil {
		return nil, err
	}
	for _, t := range targets[1:] {
		st, err := t.child.stats()
		if err != nil {
			return nil, err
		}
		rep.proxy(t.name).PeakRSSMiB = float64(st.VmHWMKiB) / 1024
	}
	return rep, nil
}

// startTargets starts the two proxies; targets are direct, baseline,
// airlock in that order. The airlock is the real binary (binary.go) unless
// o.airlockMode is in-process.
func startTargets(o *options, dir string, up *upstream) ([]*target, func(), error) {
	upRoots, err := loadRoots(up.caFile)
	if err != nil {
		return nil, nil, err
	}
	targets := []*target{{name: "direct", roots: upRoots}}
	stop := func() {
		for _, t := range targets[1:] {
			t.child.stop()
		}
	}
	roles := []string{"baseline", "airlock"}
	for _, role := range roles {
		var t *target
		if role == "airlock" && o.airlockMode == modeBinary {
			t, err = binaryTarget(o, filepath.Join(dir, role), up)
		} else {
			t, err = childTarget(o, role, filepath.Join(dir, role), up)
		}
		if err != nil {
			stop()
			return nil, nil, err
		}
		targets = append(targets, t)
	}
	return targets, stop, nil
}

// childTarget starts role as a child of the bench's own executable.
func childTarget(o *options, role, dir string, up *upstream) (*target, error) {
	co := childOptions{dir: dir, upstreamCA: up.caFile, hosts: strings.Join(up.hosts, ","), auditChain: o.auditChain, netHTTP: o.netHTTP}
	if err := os.MkdirAll(co.dir, 0o700); err != nil {
		return nil, err
	}
	if o.profileDir != "" {
		co.cpuProfile = filepath.Join(o.profileDir, role+".cpu.pprof")
		co.memProfile = filepath.Join(o.profileDir, role+".allocs.pprof")
	}
	c, err := spawn(role, co)
	if err != nil {
		return nil, err
	}
	t, err := proxiedTarget(role, c, c.hello.ProxyURL, c.hello.CAPEM)
	if err != nil {
		c.stop()
		return nil, err
	}
	return t, nil
}

// binaryTarget builds airlock, makes its home with the CLI and starts
// `airlock serve`.
func binaryTarget(o *options, dir string, up *upstream) (*target, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	bin, err := buildAirlock(dir, o.airlockBin)
	if err != nil {
		return nil, err
	}
	h, err := newHome(bin, dir, up.caFile, up.hosts)
	if err != nil {
		return nil, err
	}
	var extra []string
	if o.auditChain {
		extra = append(extra, "--audit-log", filepath.Join(dir, "audit.log"))
	}
	return serveTarget("airlock", h, dir, extra...)
}

// serveTarget starts `airlock serve` in home h with extra flags: the
// target name reaches through it as the bench agent.
func serveTarget(name string, h *airlockHome, dir string, extra ...string) (*target, error) {
	p, err := serveBinary(h, dir, extra...)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(h.dir, "ca.pem"))
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("read airlock CA: %w", err)
	}
	u := &url.URL{Scheme: "http", User: url.UserPassword(benchAgent, h.token), Host: p.proxy}
	t, err := proxiedTarget(name, p, u.String(), string(caPEM))
	if err != nil {
		p.stop()
		return nil, err
	}
	return t, nil
}

func proxiedTarget(role string, c proc, proxyURL, caPEM string) (*target, error) {
	u, err := url.Parse(proxyURL)
	if err != nil {
		return nil, fmt.Errorf("%s: bad proxy URL", role)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, fmt.Errorf("%s: bad CA", role)
	}
	return &target{name: role, proxyURL: u, roots: roots, child: c, wantAuth: role == "airlock"}, nil
}

// rounds splits each measured run so the targets take turns: on a shared
// machine background load then hits all three alike, and the ratios stay
// fair even when absolute numbers move.
const rounds = 4

// runLevel measures every target at concurrency c: warm-up (connections
// opened, leaves minted), then the measured requests in turns. At the
// highest level the proxies' peak-RSS mark is reset first, so it covers
// that level only.
func runLevel(o *options, targets []*target, base string, c int, isMax bool) (level, error) {
	lv := level{Concurrency: c, Results: map[string]latencies{}, Allocs: map[string]allocStats{}}
	warm := max(4*c, min(2000, o.requests/10))
	clients := make([]*http.Client, len(targets))
	for i, t := range targets {
		progress("c=%d %s: %d warm-up requests", c, t.name, warm)
		clients[i] = t.newClient(c)
		defer clients[i].CloseIdleConnections()
		if t.child != nil && isMax {
			t.child.resetHWM()
		}
		if _, _, _, err := t.load(clients[i], base+"/small", warm, c); err != nil {
			return lv, fmt.Errorf("%s warm-up at c=%d: %w", t.name, c, err)
		}
	}
	progress("c=%d: %d measured requests per target, in %d turns", c, o.requests, rounds)
	if o.profileDir != "" && c == o.profileLevel {
		for _, t := range targets {
			if p, ok := t.child.(*binProc); ok {
				go p.cpuProfile(filepath.Join(o.profileDir, fmt.Sprintf("airlock-binary.c%d.cpu.pprof", c)), o.profileSeconds)
			}
		}
	}
	runs := make([]measured, len(targets))
	for r := range rounds {
		n := o.requests / rounds
		if r == rounds-1 {
			n = o.requests - n*(rounds-1)
		}
		for i, t := range targets {
			if err := runs[i].add(t, clients[i], base+"/small", n, c); err != nil {
				return lv, err
			}
		}
	}
	for i, t := range targets {
		lv.Results[t.name] = summarise(runs[i].lat, runs[i].elapsed, runs[i].errs)
		lv.Allocs[t.name] = runs[i].allocs(o.requests) // direct: the load's CPU only
	}
	lv.AirlockVsDirect = ratio(lv.Results["airlock"].RPS, lv.Results["direct"].RPS)
	lv.AirlockVsBaseline = ratio(lv.Results["airlock"].RPS, lv.Results["baseline"].RPS)
	return lv, nil
}

// measured accumulates one target's turns at one level.
type measured struct {
	lat     []time.Duration
	elapsed time.Duration
	errs    int64
	mallocs uint64
	bytes   uint64
	gcs     uint32 // GC cycles the proxy ran
	hwmKiB  int64
	cpu     time.Duration // the proxy process's utime+stime during the turns
	load    time.Duration // the bench process's (load client and upstream)
}

func (m *measured) add(t *target, cl *http.Client, u string, n, c int) error {
	var before childStats
	var cpu0 time.Duration
	if t.child != nil {
		before, _ = t.child.stats()
		cpu0 = procCPU(t.child.pid()) // after the stats call: its work is not the load's
	}
	self0 := procCPU(os.Getpid())
	lat, elapsed, errs, err := t.load(cl, u, n, c)
	m.load += procCPU(os.Getpid()) - self0
	if t.child != nil {
		m.cpu += procCPU(t.child.pid()) - cpu0 // before the stats call, for the same reason
	}
	if errs > 0 {
		progress("c=%d %s: %d errors, first: %v", c, t.name, errs, err)
	}
	m.lat, m.elapsed, m.errs = append(m.lat, lat...), m.elapsed+elapsed, m.errs+errs
	if t.child == nil {
		return nil
	}
	after, err := t.child.stats()
	if err != nil {
		return err
	}
	m.mallocs += after.Mallocs - before.Mallocs
	m.bytes += after.TotalAlloc - before.TotalAlloc
	m.gcs += after.NumGC - before.NumGC
	m.hwmKiB = after.VmHWMKiB
	return nil
}

func (m *measured) allocs(requests int) allocStats {
	return allocStats{
		AllocsPerReq: float64(m.mallocs) / float64(requests),
		BytesPerReq:  float64(m.bytes) / float64(requests),
		GCsPer10k:    float64(m.gcs) * 1e4 / float64(requests),
		PeakRSSMiB:   float64(m.hwmKiB) / 1024,
		CPUusPerReq:  float64(m.cpu.Microseconds()) / float64(requests),
		LoadCPUus:    float64(m.load.Microseconds()) / float64(requests),
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// probeNewHosts measures t's first request to each of newHosts and, for
// a proxy, its CPU and allocations per host (the mint, both handshakes,
// the request).
func (r *report) probeNewHosts(t *target, newHosts []string) error {
	progress("%s: first request to %d new hosts", t.name, len(newHosts))
	if t.child == nil {
		l, err := t.newHostLatency(newHosts)
		r.NewHost[t.name] = l
		return err
	}
	before, err := t.child.stats()
	if err != nil {
		return err
	}
	cpu0 := procCPU(t.child.pid()) // after the stats call: its work is not the probe's
	l, err := t.newHostLatency(newHosts)
	r.NewHost[t.name] = l
	n := float64(len(newHosts))
	r.NewHostCPUus[t.name] = float64((procCPU(t.child.pid()) - cpu0).Microseconds()) / n
	after, serr := t.child.stats()
	if serr == nil {
		r.NewHostAllocs[t.name] = allocStats{AllocsPerReq: float64(after.Mallocs-before.Mallocs) / n,
			BytesPerReq: float64(after.TotalAlloc-before.TotalAlloc) / n}
	}
	return errors.Join(err, serr)
}

// probe measures new-host latency, SSE first event and 1 MiB throughput.
func (r *report) probe(o *options, targets []*target, base string, newHosts []string) error {
	r.NewHost, r.NewHostCPUus, r.SSE, r.MiBps = map[string]latencies{}, map[string]float64{}, map[string]latencies{}, map[string]float64{}
	r.NewHostAllocs = map[string]allocStats{}
	var errs []error
	for _, t := range targets {
		if len(newHosts) > 0 {
			errs = append(errs, r.probeNewHosts(t, newHosts))
		}
		cl := t.newClient(1)
		progress("%s: SSE first event x%d, 1 MiB x%d", t.name, o.sseSamples, o.mibDownloads)
		l, err := t.sseFirstEvent(cl, base, o.sseSamples)
		errs = append(errs, err)
		r.SSE[t.name] = l
		mbps, err := t.throughput(cl, base, o.mibDownloads)
		errs = append(errs, err)
		r.MiBps[t.name] = mbps
		cl.CloseIdleConnections()
	}
	return errors.Join(errs...)
}
