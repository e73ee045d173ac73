package main

import (
	"fmt"
	"io"
	"strings"
)

// report is the result of one run; --json prints it as is.
type report struct {
	Machine    string               `json:"machine"`
	Requests   int                  `json:"requests_per_run"`
	AuditChain bool                 `json:"audit_chain"`
	Airlock    string               `json:"airlock"`    // binary or in-process
	ProxyCPUs  string               `json:"proxy_cpus"` // taskset of both proxies, "" unpinned
	Levels     []level              `json:"levels"`
	NewHost    map[string]latencies `json:"new_host_first_request"`
	// NewHostCPUus is each proxy's CPU (utime+stime) per new host.
	NewHostCPUus map[string]float64 `json:"new_host_proxy_cpu_us"`
	// NewHostAllocs is each proxy's allocations per new host: unlike its
	// CPU, nearly the same from run to run, so a change shows in one run.
	NewHostAllocs map[string]allocStats `json:"new_host_proxy_allocs"`
	SSE           map[string]latencies  `json:"sse_first_event"`
	MiBps         map[string]float64    `json:"throughput_1mib_mib_per_s"`
	Proxies       map[string]*proxyInfo `json:"proxies"`
}

// level is one concurrency level: every target's latencies, the proxies'
// allocations, and airlock's throughput ratios.
type level struct {
	Concurrency       int                   `json:"concurrency"`
	Results           map[string]latencies  `json:"results"`
	Allocs            map[string]allocStats `json:"proxy_allocs"`
	AirlockVsDirect   float64               `json:"airlock_vs_direct"`
	AirlockVsBaseline float64               `json:"airlock_vs_baseline"`
}

// allocStats are a proxy process's allocations during a measured run,
// divided by its requests, and its peak RSS so far; and the CPU the
// bench's own process (the load client and the upstream, pinned apart
// from the proxies) spent per request on the target (direct has only
// that one).
type allocStats struct {
	AllocsPerReq float64 `json:"allocs_per_request"`
	BytesPerReq  float64 `json:"bytes_per_request"`
	GCsPer10k    float64 `json:"gc_cycles_per_10k_requests"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	CPUusPerReq  float64 `json:"cpu_us_per_request"`      // utime+stime of the proxy process (/proc/PID/stat)
	LoadCPUus    float64 `json:"load_cpu_us_per_request"` // of the bench process: the load client and the upstream
}

type proxyInfo struct {
	PeakRSSMiB float64 `json:"peak_rss_mib"` // VmHWM of the proxy process over the whole run
}

func (r *report) proxy(name string) *proxyInfo {
	if r.Proxies == nil {
		r.Proxies = map[string]*proxyInfo{}
	}
	if r.Proxies[name] == nil {
		r.Proxies[name] = &proxyInfo{}
	}
	return r.Proxies[name]
}

var order = []string{"direct", "baseline", "airlock"}

func (r *report) print(w io.Writer) {
	where := "upstream, load generator and both proxies share the CPUs"
	if r.ProxyCPUs != "" {
		where = "both proxies pinned to CPU " + r.ProxyCPUs + " (taskset)"
	}
	fmt.Fprintf(w, "airlock-bench: %d requests per run; airlock: %s; %s; %s\n\n", r.Requests, r.Airlock, r.Machine, where)
	fmt.Fprintf(w, "%5s | %-24s | %-24s | %-24s | %-9s %-9s\n", "", "direct", "baseline (bare goproxy)", "airlock", "airlock/", "airlock/")
	fmt.Fprintf(w, "%5s | %8s %7s %7s | %8s %7s %7s | %8s %7s %7s | %-9s %-9s\n",
		"conc", "req/s", "p50 ms", "p99 ms", "req/s", "p50 ms", "p99 ms", "req/s", "p50 ms", "p99 ms", "direct", "baseline")
	fmt.Fprintln(w, strings.Repeat("-", 106))
	for _, lv := range r.Levels {
		fmt.Fprintf(w, "%5d |", lv.Concurrency)
		for _, name := range order {
			l := lv.Results[name]
			fmt.Fprintf(w, " %8.0f %7.3f %7.3f |", l.RPS, l.P50ms, l.P99ms)
		}
		fmt.Fprintf(w, " %8.2fx %8.2fx\n", lv.AirlockVsDirect, lv.AirlockVsBaseline)
	}
	fmt.Fprintln(w)
	r.printErrors(w)
	if len(r.NewHost) > 0 {
		r.printLat(w, "first request to a new host", r.NewHost)
		fmt.Fprintf(w, "%-30s baseline %6.0f us   airlock %6.0f us   (leaf, both handshakes, the request)\n",
			"proxy CPU per new host", r.NewHostCPUus["baseline"], r.NewHostCPUus["airlock"])
		ba, aa := r.NewHostAllocs["baseline"], r.NewHostAllocs["airlock"]
		fmt.Fprintf(w, "%-30s baseline %6.0f allocs %5.1f KiB   airlock %6.0f allocs %5.1f KiB\n",
			"proxy allocations per new host", ba.AllocsPerReq, ba.BytesPerReq/1024, aa.AllocsPerReq, aa.BytesPerReq/1024)
	}
	r.printLat(w, "SSE first event", r.SSE)
	fmt.Fprintf(w, "%-30s direct %7.0f MiB/s   baseline %7.0f MiB/s   airlock %7.0f MiB/s   airlock/direct %.2fx\n",
		"1 MiB body throughput", r.MiBps["direct"], r.MiBps["baseline"], r.MiBps["airlock"], ratio(r.MiBps["airlock"], r.MiBps["direct"]))
	fmt.Fprintf(w, "%-30s baseline %6.1f MiB   airlock %6.1f MiB   (VmHWM of each proxy process, whole run)\n",
		"peak RSS", r.proxy("baseline").PeakRSSMiB, r.proxy("airlock").PeakRSSMiB)
	fmt.Fprintf(w, "%-30s", "per proxied request")
	for _, lv := range r.Levels {
		b, a := lv.Allocs["baseline"], lv.Allocs["airlock"]
		fmt.Fprintf(w, "  c=%d: baseline %.0f allocs %.1f KiB, airlock %.0f allocs %.1f KiB;", lv.Concurrency,
			b.AllocsPerReq, b.BytesPerReq/1024, a.AllocsPerReq, a.BytesPerReq/1024)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-30s", "proxy CPU per request")
	for _, lv := range r.Levels {
		b, a := lv.Allocs["baseline"].CPUusPerReq, lv.Allocs["airlock"].CPUusPerReq
		fmt.Fprintf(w, "  c=%d: baseline %.1f us, airlock %.1f us (baseline/airlock %.2fx);", lv.Concurrency, b, a, ratio(b, a))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-30s", "client+upstream CPU per req")
	for _, lv := range r.Levels {
		fmt.Fprintf(w, "  c=%d: direct %.1f us, baseline %.1f us, airlock %.1f us;", lv.Concurrency,
			lv.Allocs["direct"].LoadCPUus, lv.Allocs["baseline"].LoadCPUus, lv.Allocs["airlock"].LoadCPUus)
	}
	fmt.Fprintln(w)
	if n := len(r.Levels); n > 0 {
		lv := r.Levels[n-1]
		fmt.Fprintf(w, "%-30s baseline %6.1f MiB   airlock %6.1f MiB\n", fmt.Sprintf("peak RSS during c=%d", lv.Concurrency),
			lv.Allocs["baseline"].PeakRSSMiB, lv.Allocs["airlock"].PeakRSSMiB)
	}
}

func (r *report) printLat(w io.Writer, what string, m map[string]latencies) {
	fmt.Fprintf(w, "%-30s", what)
	for _, name := range order {
		fmt.Fprintf(w, " %s p50 %.3f p99 %.3f ms;", name, m[name].P50ms, m[name].P99ms)
	}
	fmt.Fprintf(w, " airlock-direct p50 %+.3f ms\n", m["airlock"].P50ms-m["direct"].P50ms)
}

func (r *report) printErrors(w io.Writer) {
	for _, lv := range r.Levels {
		for _, name := range order {
			if n := lv.Results[name].Errors; n > 0 {
				fmt.Fprintf(w, "WARNING: %s at c=%d: %d failed requests (see stderr)\n", name, lv.Concurrency, n)
			}
		}
	}
}
