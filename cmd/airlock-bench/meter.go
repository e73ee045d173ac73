package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// `airlock-bench meter` measures what LLM metering costs on the binary
// users run: two `airlock serve` processes from one build, each with a
// home made by the CLI and the same policy, except that in one the rule
// says `usage: openai` and a budget covers it ("on": the meter reads
// every answer, reserves and settles the budget, adds include_usage to
// streamed requests and strips the extra chunk) and in the other it does
// not ("off"). The same load (chat completions at --concurrency: JSON;
// SSE that airlock rewrites for include_usage; SSE whose request asks for
// the usage chunk itself, relayed unedited) goes to each in alternating
// turns (off, on, on, off, ...),
// so other load on the machine falls on both alike. It reports req/s and
// the proxy's CPU per request, on over off, and the first SSE event's
// latency of each, one request at a time.

// The chat completion bodies the load sends.
const (
	meterChatBody = `{"model":"gpt-4o","max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
	meterSSEBody  = `{"model":"gpt-4o","stream":true,"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
	// meterOwnBody asks for the usage chunk itself: the meter reads the
	// stream and relays it unedited.
	meterOwnBody = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}]}`
)

// The upstream's answers, shaped as OpenAI's: a chat completion with its
// usage, and the chunks of a streamed one.
const (
	chatAnswer = `{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}`
	chatChunk  = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]`
	chatUsage  = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29}}` + "\n\n"
	// chatTokens is what one answer's usage counts (prompt + completion).
	chatTokens = 29
)

// flushQuery asks chatCompletions to flush every chunk (--flush-each),
// after a pause (--gap).
func (o *meterOptions) flushQuery() string {
	switch {
	case o.gap > 0:
		return "&flush=each&gap=" + o.gap.String()
	case o.flushEach:
		return "&flush=each"
	}
	return ""
}

// chatCompletions answers as OpenAI does: JSON, or with "stream":true an
// SSE stream whose first chunk is flushed at once, then three more (or
// ?chunks=N in all; in one burst, or each flushed with ?flush=each), the
// usage-only chunk when
// stream_options.include_usage asks for it (OpenAI's shape: every chunk
// then carries "usage":null), and [DONE].
func chatCompletions(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	markAuth(w.Header(), r)
	if !bytes.Contains(body, []byte(`"stream":true`)) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, chatAnswer)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	tail := ""
	if bytes.Contains(body, []byte(`"include_usage":true`)) {
		tail = `,"usage":null`
	}
	event := "data: " + chatChunk + tail + "}\n\n"
	_, _ = io.WriteString(w, event)
	_ = http.NewResponseController(w).Flush()
	chunks, err := strconv.Atoi(r.URL.Query().Get("chunks"))
	if err != nil || chunks < 1 || chunks > 10000 {
		chunks = 4
	}
	if r.URL.Query().Get("flush") == "each" {
		gap, _ := time.ParseDuration(r.URL.Query().Get("gap")) // 0: none
		for range chunks - 1 {
			if gap > 0 {
				time.Sleep(gap)
			}
			_, _ = io.WriteString(w, event)
			_ = http.NewResponseController(w).Flush()
		}
	} else {
		_, _ = io.WriteString(w, strings.Repeat(event, chunks-1))
	}
	if tail != "" {
		_, _ = io.WriteString(w, chatUsage)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

type meterOptions struct {
	requests, conc, rounds, sse int
	flushEach                   bool
	gap                         time.Duration
	bin, profileDir             string
	profileSeconds              int
	kinds                       []string
	chunks                      int
	aa                          bool // both proxies unmetered (the noise floor)
}

// meterKinds are the loads, by name: the body each request sends.
var meterKinds = []struct{ name, body string }{{"chat", meterChatBody}, {"sse", meterSSEBody}, {"sse-own", meterOwnBody}}

func runMeter(args []string) error {
	o := meterOptions{}
	fs := flag.NewFlagSet("airlock-bench meter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.requests, "requests", 40000, "measured requests per kind (chat, sse) and per proxy")
	fs.IntVar(&o.conc, "concurrency", 50, "concurrent clients")
	fs.IntVar(&o.rounds, "rounds", 8, "turns each proxy takes per kind (off and on alternate)")
	fs.IntVar(&o.sse, "sse", 400, "first-event samples per proxy, one request at a time")
	kinds := fs.String("kinds", "chat,sse,sse-own", "comma-separated loads: chat (JSON), sse (airlock adds include_usage), sse-own (the request asks for it)")
	fs.IntVar(&o.chunks, "chunks", 4, "chunks of each streamed answer, the usage chunk aside (1..10000; all but the first arrive in one burst, unless --flush-each)")
	fs.BoolVar(&o.flushEach, "flush-each", false, "the upstream flushes every chunk on its own, as a model generating tokens does")
	fs.DurationVar(&o.gap, "gap", 0, "with it, the upstream also waits this long before each chunk after the first (implies --flush-each; e.g. 5ms: a model's pace, the proxy idle between events; raise --concurrency)")
	fs.StringVar(&o.bin, "airlock-bin", "", "use this airlock binary instead of building one")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of both airlocks (through their admin ports, from the start of each kind's measured turns) and their allocation profiles (at each kind's end) into `DIR`")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 5, "length of each CPU profile (it covers the turns of both proxies: raise --requests to fill it)")
	fs.StringVar(&proxyCPUs, "proxy-cpus", "", "pin both airlocks to these CPUs with taskset (e.g. 0; run the bench under `taskset -c 1`)")
	fs.BoolVar(&o.aa, "aa", false, "an A/A run: \"on\" gets the unmetered policy too, so its on/off figures are the machine's noise floor for a real run's")
	if err := parseSub(fs, args); err != nil {
		return err
	}
	if o.requests < o.rounds || o.conc < 1 || o.rounds < 2 || o.sse < 1 || o.chunks < 1 || o.chunks > 10000 {
		return errors.New("--requests must be at least --rounds (2 or more); --concurrency and --sse positive; --chunks 1..10000")
	}
	for _, k := range strings.Split(*kinds, ",") {
		if !slices.ContainsFunc(meterKinds, func(m struct{ name, body string }) bool { return m.name == k }) {
			return fmt.Errorf("--kinds: unknown load %q (chat, sse, sse-own)", k)
		}
		o.kinds = append(o.kinds, k)
	}
	if err := makeProfileDir(o.profileDir); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "airlock-bench-meter-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	up, err := startUpstream(dir, 0)
	if err != nil {
		return err
	}
	defer up.close()
	bin, err := buildAirlock(dir, o.bin)
	if err != nil {
		return err
	}
	var ts [2]*target // off, on
	for i, metered := range []bool{false, true} {
		if ts[i], err = meterTarget(bin, filepath.Join(dir, meterName(metered)), up, metered && !o.aa); err != nil {
			return err
		}
		defer ts[i].child.stop()
	}
	rep, err := measureMeter(o, ts, "https://"+up.hosts[0]+"/v1/chat/completions?chunks="+strconv.Itoa(o.chunks)+o.flushQuery())
	if err != nil {
		return err
	}
	rep.print(stdout)
	return rep.miscounted()
}

// miscounted says how the meter's counts differ from what was sent: every
// request to "on" counted with its tokens, none to "off" (nor to "on" in
// an A/A run).
func (rep *meterReport) miscounted() error {
	sent := rep.metered()
	if rep.Counted[1] != float64(sent) || rep.Tokens != float64(sent*chatTokens) || rep.Counted[0] != 0 {
		return fmt.Errorf("the meter miscounted: on counted %.0f requests and %.0f tokens of %d sent (want %d tokens), off counted %.0f",
			rep.Counted[1], rep.Tokens, rep.Sent, sent*chatTokens, rep.Counted[0])
	}
	return nil
}

// metered is how many requests "on" should have counted: every one sent,
// none in an A/A run.
func (rep *meterReport) metered() int64 {
	if rep.AA {
		return 0
	}
	return rep.Sent
}

func meterName(metered bool) string {
	if metered {
		return "on"
	}
	return "off"
}

// meterTarget makes a home in dir, writes the meter policy and starts
// `airlock serve`.
func meterTarget(bin, dir string, up *upstream, metered bool) (*target, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	h, err := newHome(bin, dir, up.caFile, up.hosts)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(h.policyPath(), []byte(meterPolicy(up.hosts[0], metered)), 0o600); err != nil {
		return nil, fmt.Errorf("write meter policy: %w", err)
	}
	return serveTarget("airlock "+meterName(metered), h, dir)
}

// meterPolicy is the bench policy for one LLM host; metered adds
// `usage: openai` to its rule and a monthly token budget (far above what
// the run uses) over it.
func meterPolicy(host string, metered bool) string {
	p := benchPolicy([]string{host})
	if metered {
		p += "    usage: openai\nbudgets:\n  - {name: bench-month, scope: {rule: bench-0}, limit: {tokens: 1000000000000}, window: month}\n"
	}
	return p
}

// meterSide is one proxy's figures for one kind of request.
type meterSide struct {
	RPS    float64 `json:"rps"`
	CPUus  float64 `json:"cpu_us_per_req"`
	P50ms  float64 `json:"p50_ms"`
	P99ms  float64 `json:"p99_ms"`
	Errors int64   `json:"errors"`
	Allocs float64 `json:"allocs_per_req"`
	Bytes  float64 `json:"alloc_bytes_per_req"`
	GCs    float64 `json:"gc_cycles_per_10k_req"`
}

type meterKind struct {
	Kind     string    `json:"kind"`
	Off, On  meterSide `json:"-"`
	RPSRatio float64   `json:"rps_on_over_off"`
	CPURatio float64   `json:"cpu_on_over_off"`
	// RoundCPURatios is CPURatio of each round alone: their spread is
	// how far one run's figure can be trusted.
	RoundCPURatios []float64 `json:"round_cpu_on_over_off"`
}

type meterReport struct {
	Machine     string
	Requests    int
	Concurrency int
	Rounds      int
	Chunks      int
	FlushEach   bool   // every chunk flushed on its own (else all but the first in one burst)
	Gap         string // the upstream's pause before each chunk after the first ("0s": none)
	Kinds       []meterKind
	FirstEvent  [2]latencies // off, on
	Sent        int64        // requests sent to "on", warm-ups included
	Counted     [2]float64   // airlock_llm_requests_total of off and on
	Tokens      float64      // airlock_llm_tokens_total of on, input and output
	AA          bool         `json:"aa"` // both unmetered (--aa)
}

// turn is which proxy goes first in round r: off, on, on, off, ...
func turn(r, i int) int { return (r + i) % 2 }

// measureMeter runs both kinds on both proxies, then the first-event
// probe, then reads what "on" counted.
func measureMeter(o meterOptions, ts [2]*target, u string) (*meterReport, error) {
	rep := &meterReport{Machine: machine(), Requests: o.requests, Concurrency: o.conc, Rounds: o.rounds, Chunks: o.chunks, FlushEach: o.flushEach || o.gap > 0, Gap: o.gap.String(), AA: o.aa}
	var clients [2]*http.Client
	for i, t := range ts {
		clients[i] = t.newClient(o.conc)
		defer clients[i].CloseIdleConnections()
	}
	for _, k := range meterKinds {
		if !slices.Contains(o.kinds, k.name) {
			continue
		}
		warm := max(4*o.conc, o.requests/10)
		for i, t := range ts {
			t.body = []byte(k.body)
			progress("meter %s %s: %d warm-up requests", k.name, t.name, warm)
			if _, _, errs, err := t.load(clients[i], u, warm, o.conc); errs > 0 {
				return nil, fmt.Errorf("%s warm-up: %d errors, first: %w", t.name, errs, err)
			}
		}
		rep.Sent += int64(warm)
		progress("meter %s: %d measured requests per proxy at c=%d, in %d turns", k.name, o.requests, o.conc, o.rounds)
		var profiles sync.WaitGroup
		if o.profileDir != "" {
			for _, t := range ts {
				path := filepath.Join(o.profileDir, fmt.Sprintf("meter-%s.%s.cpu.pprof", k.name, strings.TrimPrefix(t.name, "airlock ")))
				profiles.Go(func() { t.child.(*binProc).cpuProfile(path, o.profileSeconds) })
			}
		}
		var runs [2]measured
		var perRound []float64 // each round's on/off CPU per request
		for r := range o.rounds {
			n := o.requests / o.rounds
			if r == o.rounds-1 {
				n = o.requests - n*(o.rounds-1)
			}
			var cpu [2]time.Duration
			for j := range 2 {
				i := turn(r, j)
				cpu0 := runs[i].cpu
				if err := runs[i].add(ts[i], clients[i], u, n, o.conc); err != nil {
					return nil, err
				}
				cpu[i] = runs[i].cpu - cpu0
			}
			perRound = append(perRound, ratio(float64(cpu[1]), float64(cpu[0])))
		}
		profiles.Wait()
		if o.profileDir != "" { // allocations since start, warm-ups included: where they are, not how many
			for _, t := range ts {
				t.child.(*binProc).allocsProfile(filepath.Join(o.profileDir, fmt.Sprintf("meter-%s.%s.allocs.pprof", k.name, strings.TrimPrefix(t.name, "airlock "))))
			}
		}
		rep.Sent += int64(o.requests)
		mk := meterKindOf(k.name, runs, o.requests)
		mk.RoundCPURatios = perRound
		rep.Kinds = append(rep.Kinds, mk)
	}
	if err := rep.firstEvent(o, ts, clients, u); err != nil {
		return nil, err
	}
	for i, t := range ts {
		m, err := t.child.(*binProc).metrics()
		if err != nil {
			return nil, err
		}
		for key, v := range m {
			switch {
			case strings.HasPrefix(key, "airlock_llm_requests_total{"):
				rep.Counted[i] += v
			case i == 1 && strings.HasPrefix(key, "airlock_llm_tokens_total{") &&
				(strings.Contains(key, `kind="input"`) || strings.Contains(key, `kind="output"`)):
				rep.Tokens += v
			}
		}
	}
	return rep, nil
}

func meterKindOf(kind string, runs [2]measured, requests int) meterKind {
	k := meterKind{Kind: kind}
	for i, side := range []*meterSide{&k.Off, &k.On} {
		l := summarise(runs[i].lat, runs[i].elapsed, runs[i].errs)
		a := runs[i].allocs(requests)
		*side = meterSide{RPS: l.RPS, CPUus: a.CPUusPerReq, P50ms: l.P50ms, P99ms: l.P99ms, Errors: l.Errors, Allocs: a.AllocsPerReq, Bytes: a.BytesPerReq, GCs: a.GCsPer10k}
	}
	k.RPSRatio, k.CPURatio = ratio(k.On.RPS, k.Off.RPS), ratio(k.On.CPUus, k.Off.CPUus)
	return k
}

// firstEvent times the first SSE event of the stream airlock rewrites
// (sse), one request at a time over a warm connection, the two proxies
// taking turns in blocks.
func (rep *meterReport) firstEvent(o meterOptions, ts [2]*target, clients [2]*http.Client, u string) error {
	progress("meter: SSE first event x%d per proxy, one at a time", o.sse)
	for _, t := range ts {
		t.body = []byte(meterSSEBody) // the stream airlock rewrites for include_usage
	}
	var lat [2][]time.Duration
	const blocks = 8
	for b := range blocks {
		for j := range 2 {
			i := turn(b, j)
			for range max(1, o.sse/blocks) {
				var d time.Duration
				if err := ts[i].readFirstEvent(clients[i], u, &d); err != nil {
					return err
				}
				lat[i] = append(lat[i], d)
			}
		}
	}
	rep.Sent += int64(len(lat[1]))
	for i := range lat {
		rep.FirstEvent[i] = summarise(lat[i], time.Second, 0)
	}
	return nil
}

func (rep *meterReport) print(w io.Writer) {
	arrival := "all but the first in one burst"
	if rep.FlushEach {
		arrival = "each flushed on its own"
	}
	if rep.Gap != "0s" {
		arrival += ", " + rep.Gap + " apart"
	}
	fmt.Fprintf(w, "airlock-bench meter: %d requests per kind and proxy at c=%d in %d turns, streams of %d chunks (%s); airlock: binary; %s",
		rep.Requests, rep.Concurrency, rep.Rounds, rep.Chunks, arrival, rep.Machine)
	if proxyCPUs != "" {
		fmt.Fprintf(w, "; both airlocks pinned to CPU %s (taskset)", proxyCPUs)
	}
	fmt.Fprintf(w, "\n\n         | meter off                            | meter on                             | on/off          \n")
	fmt.Fprintf(w, " kind    |    req/s  p50 ms  p99 ms  cpu µs/req |    req/s  p50 ms  p99 ms  cpu µs/req |  req/s  cpu/req\n")
	fmt.Fprintln(w, strings.Repeat("-", 104))
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, " %-7s | %8.0f %7.3f %7.3f %11.1f | %8.0f %7.3f %7.3f %11.1f | %5.3fx  %5.3fx\n", k.Kind,
			k.Off.RPS, k.Off.P50ms, k.Off.P99ms, k.Off.CPUus, k.On.RPS, k.On.P50ms, k.On.P99ms, k.On.CPUus, k.RPSRatio, k.CPURatio)
	}
	fmt.Fprintln(w)
	if rep.AA {
		fmt.Fprintln(w, "A/A run (--aa): \"on\" is unmetered too; its figures are the noise floor of an on/off run")
	}
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, "%-7s cpu/req on/off per round: %s (median %.3fx)\n", k.Kind, roundRatios(k.RoundCPURatios), medianOf(k.RoundCPURatios))
	}
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, "%-7s metering costs %+.1f %% throughput, %+.1f %% proxy CPU per request (allocs/req off %.0f, on %.0f; bytes/req off %.0f, on %.0f; GC cycles per 10k requests off %.1f, on %.1f; errors off %d, on %d)\n",
			k.Kind, (1-k.RPSRatio)*100, (k.CPURatio-1)*100, k.Off.Allocs, k.On.Allocs, k.Off.Bytes, k.On.Bytes, k.Off.GCs, k.On.GCs, k.Off.Errors, k.On.Errors)
	}
	off, on := rep.FirstEvent[0], rep.FirstEvent[1]
	fmt.Fprintf(w, "SSE first event, one at a time: off p50 %.3f p99 %.3f ms; on p50 %.3f p99 %.3f ms; on-off p50 %+.3f ms\n",
		off.P50ms, off.P99ms, on.P50ms, on.P99ms, on.P50ms-off.P50ms)
	fmt.Fprintf(w, "counted by the meter: on %.0f of %d requests sent (%.0f tokens, want %d); off %.0f\n",
		rep.Counted[1], rep.Sent, rep.Tokens, rep.metered()*chatTokens, rep.Counted[0])
}

// roundRatios lists ratios as "0.98 1.03 ...".
func roundRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.FormatFloat(r, 'f', 3, 64)
	}
	return strings.Join(parts, " ")
}

// medianOf is the median of xs (0 for none).
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
