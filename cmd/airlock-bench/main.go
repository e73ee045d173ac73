// Command airlock-bench measures what airlock adds to an agent's API
// calls, in one process tree on loopback: an HTTPS upstream, the same load
// sent direct, through a bare goproxy MITM tuned for speed (the fair
// reference: two TLS sessions and two HTTP parses per request, nothing
// else), and through airlock (the real serve code path: policy, bearer
// injection, metrics, a log line per request to a file).
//
//	go run ./cmd/airlock-bench [--requests 20000] [--concurrency 1,10,50,200] [--json]
//	go run ./cmd/airlock-bench streams [--n 10000] [--seconds 60]
//	go run ./cmd/airlock-bench idle [--n 10000]
//	go run ./cmd/airlock-bench soak [--minutes 20]
//	go run ./cmd/airlock-bench meter [--requests 40000] [--concurrency 50]
//
// The two proxies run as child processes of the bench (the bench's own
// executable with -child, or the airlock binary), so peak RSS, allocations
// and CPU time per request (utime+stime from /proc/PID/stat around each
// measured turn) are the proxy's own; with --profile DIR each child writes
// CPU and alloc profiles. With the proxies pinned to one CPU
// (--proxy-cpus), CPU per request is what decides the throughput ratio,
// and it moves far less than req/s when other work shares the machine.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// options are the flags of a bench run.
type options struct {
	requests       int
	concurrency    []int
	jsonOut        bool
	newHosts       int
	sseSamples     int
	mibDownloads   int
	profileDir     string
	profileLevel   int // binary airlock: CPU profile through the admin port at this concurrency
	profileSeconds int
	auditChain     bool
	netHTTP        bool
	airlockMode    string // binary (default) or in-process
	airlockBin     string // prebuilt airlock binary; "": go build
	child          childOptions
}

func main() { os.Exit(run(os.Args[1:])) }

// subcommands are the long-running measurements besides the default run.
var subcommands = map[string]func(args []string) error{
	"streams": runStreams, // many concurrent SSE streams (scale.go)
	"idle":    runIdle,    // many idle keep-alive agent connections (scale.go)
	"soak":    runSoak,    // mixed load with reloads (soak.go)
	"meter":   runMeter,   // LLM metering on against off (meter.go)
}

func run(args []string) int {
	if len(args) > 0 && subcommands[args[0]] != nil {
		if err := subcommands[args[0]](args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			fmt.Fprintln(stderr, "airlock-bench "+args[0]+":", err)
			return exitFail
		}
		return exitOK
	}
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(stderr, "airlock-bench:", err)
		return exitUsage
	}
	if o.child.role != "" {
		o.child.auditChain, o.child.netHTTP = o.auditChain, o.netHTTP
		if err := runChild(o.child); err != nil {
			fmt.Fprintln(stderr, "airlock-bench child:", err)
			return exitFail
		}
		return exitOK
	}
	rep, err := bench(o)
	if err != nil {
		fmt.Fprintln(stderr, "airlock-bench:", err)
		return exitFail
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return exitFail
		}
		return exitOK
	}
	rep.print(stdout)
	return exitOK
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("airlock-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conc := fs.String("concurrency", "1,10,50,200", "comma-separated concurrency levels")
	fs.IntVar(&o.requests, "requests", 20000, "measured requests per target and concurrency level")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON document instead of the table")
	fs.IntVar(&o.newHosts, "new-hosts", 50, "never-seen hosts (127.0.0.2, ...) for the first-request latency; 0 skips it")
	fs.IntVar(&o.sseSamples, "sse", 200, "SSE first-event samples per target")
	fs.IntVar(&o.mibDownloads, "mib", 100, "1 MiB downloads per target for the throughput")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU and alloc profiles of both proxies into DIR (the airlock binary: a CPU profile through its admin port during --profile-level)")
	fs.IntVar(&o.profileLevel, "profile-level", 50, "concurrency level at which the airlock binary is profiled")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 5, "length of the airlock binary's CPU profile")
	fs.BoolVar(&o.auditChain, "audit-chain", false, "also write airlock's hash-chained audit file (serve --audit-log)")
	fs.BoolVar(&o.netHTTP, "inner-net-http", false, "airlock serves MITM'd connections with net/http.Server instead of its lean HTTP/1.1 loop")
	fs.StringVar(&o.airlockMode, "airlock", modeBinary, "airlock column: binary (`airlock serve` built with go build, a home made by the CLI) or in-process (the stack assembled in a child of the bench; for profiling with --profile)")
	fs.StringVar(&o.airlockBin, "airlock-bin", "", "use this airlock binary instead of building one")
	fs.StringVar(&proxyCPUs, "proxy-cpus", "", "pin both proxies to these CPUs with taskset (e.g. 0; run the bench under `taskset -c 1`)")
	registerChildFlags(fs, &o.child)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--concurrency: bad level %q", s)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if o.airlockMode != modeBinary && o.airlockMode != modeInProcess {
		return nil, fmt.Errorf("--airlock: want %s or %s", modeBinary, modeInProcess)
	}
	if o.requests < 1 || o.newHosts < 0 || o.newHosts > 5000 || o.sseSamples < 1 || o.mibDownloads < 1 {
		return nil, errors.New("--requests, --sse and --mib must be positive; --new-hosts 0..5000")
	}
	return o, makeProfileDir(o.profileDir)
}

// makeProfileDir creates --profile's directory up front, so a run does not
// measure for minutes and then fail to save what it profiled.
func makeProfileDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--profile: %w (name a directory you can write)", err)
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(stderr, "airlock-bench: "+format+"\n", args...)
}

func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, GOMAXPROCS %d, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
}
