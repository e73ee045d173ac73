package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

// Each proxy under test (the bare goproxy baseline and airlock) runs in a
// child process of the bench, started from the bench's own executable with
// -child ROLE. Separate processes make the proxy's peak RSS and its
// allocations its own, not the load generator's or the upstream's, and
// give each proxy its own CPU profile.
//
// Protocol: the child prints one JSON line (childHello) on stdout, then
// answers commands read from stdin, one per line: "stats" prints one JSON
// line (childStats); "reset-hwm" resets the peak-RSS mark; end of input
// stops the child (profiles are written then).

type childHello struct {
	Addr     string `json:"addr"`
	ProxyURL string `json:"proxy_url"` // with the agent's credentials for airlock
	CAPEM    string `json:"ca_pem"`    // the proxy's MITM CA
	Error    string `json:"error,omitempty"`
}

type childStats struct {
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
	NumGC      uint32 `json:"num_gc"`
	VmHWMKiB   int64  `json:"vm_hwm_kib"`
	VmRSSKiB   int64  `json:"vm_rss_kib"`
}

// childOptions are the flags of a child.
type childOptions struct {
	role       string
	dir        string
	upstreamCA string
	hosts      string // comma-separated host:port the policy must cover
	cpuProfile string
	memProfile string
	auditChain bool
	netHTTP    bool // airlock serves MITM'd connections with net/http.Server (lean-loop comparison)
}

// runChild is main for -child: build the proxy, say hello, serve commands.
func runChild(o childOptions) error {
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	var (
		hello childHello
		stop  func()
		err   error
	)
	switch o.role {
	case "airlock":
		hello, stop, err = startAirlock(o)
	case "baseline":
		hello, stop, err = startBaseline(o)
	default:
		err = fmt.Errorf("unknown child role %q", o.role)
	}
	if err != nil {
		hello.Error = err.Error()
	}
	if e := json.NewEncoder(os.Stdout).Encode(hello); e != nil || err != nil {
		return errors.Join(err, e)
	}
	serveCommands(os.Stdin, os.Stdout)
	stop()
	if o.memProfile != "" {
		if err := writeAllocs(o.memProfile); err != nil {
			return err
		}
	}
	return nil
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	return nil
}

func serveCommands(in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			_ = enc.Encode(readStats())
		case "reset-hwm":
			// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux).
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
			_ = enc.Encode(struct{}{})
		}
	}
}

func readStats() childStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	hwm, rss := procStatus()
	return childStats{Mallocs: m.Mallocs, TotalAlloc: m.TotalAlloc, NumGC: m.NumGC, VmHWMKiB: hwm, VmRSSKiB: rss}
}

// procStatus reads VmHWM and VmRSS (KiB) of this process; 0 when the
// system has no /proc.
func procStatus() (hwm, rss int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	return parseStatus(b)
}

// parseStatus finds VmHWM and VmRSS (KiB) in a /proc/PID/status file.
func parseStatus(b []byte) (hwm, rss int64) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}

// proc is a running proxy under test: a child of the bench's own
// executable, or the airlock binary (binProc).
type proc interface {
	pid() int
	stats() (childStats, error)
	resetHWM()
	stop()
}

// child is the bench's handle on a running child.
type child struct {
	role  string
	hello childHello
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
}

// spawn starts the bench's own executable as a child with role.
func spawn(role string, o childOptions) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	args := []string{"-child", role, "-dir", o.dir, "-upstream-ca", o.upstreamCA, "-hosts", o.hosts,
		"-audit-chain=" + strconv.FormatBool(o.auditChain), "-inner-net-http=" + strconv.FormatBool(o.netHTTP)}
	if o.cpuProfile != "" {
		args = append(args, "-cpuprofile", o.cpuProfile, "-memprofile", o.memProfile)
	}
	cmd := proxyCommand(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s child: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	if err := c.read(&c.hello); err != nil || c.hello.Error != "" {
		c.stop()
		if err == nil {
			err = errors.New(c.hello.Error)
		}
		return nil, fmt.Errorf("%s child: %w", role, err)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) read(v any) error {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read from %s child: %w", c.role, err)
	}
	return json.Unmarshal(line, v)
}

func (c *child) stats() (childStats, error) {
	var s childStats
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return s, err
	}
	return s, c.read(&s)
}

func (c *child) resetHWM() {
	if _, err := io.WriteString(c.in, "reset-hwm\n"); err == nil {
		_ = c.read(&struct{}{})
	}
}

// stop closes the child's input and waits for it to write its profiles.
func (c *child) stop() {
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

// registerChildFlags adds the hidden flags of -child mode.
func registerChildFlags(fs *flag.FlagSet, o *childOptions) {
	fs.StringVar(&o.role, "child", "", "internal: run as the proxy child ROLE (airlock or baseline)")
	fs.StringVar(&o.dir, "dir", "", "internal: working directory of the child")
	fs.StringVar(&o.upstreamCA, "upstream-ca", "", "internal: PEM file of the upstream CA")
	fs.StringVar(&o.hosts, "hosts", "", "internal: upstream host:port list")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "internal: child CPU profile file")
	fs.StringVar(&o.memProfile, "memprofile", "", "internal: child alloc profile file")
}

func listenLoopback() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	return l, nil
}
