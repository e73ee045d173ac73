package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The airlock column measures the binary users run: `airlock` built once
// with `go build`, a home made by the CLI (`airlock init`, `agent add`,
// `vault set`), a policy file with `paths: ["/v1/**"]`, and `airlock
// serve` with its log lines in a file and the admin listener on. The
// bench reads the process's allocations from /metrics and its RSS from
// /proc. --airlock in-process keeps the older child (the stack assembled
// by the bench's own executable) for profiling comparisons.

const (
	benchPassphrase = "airlock-bench passphrase, not a secret"
	modeBinary      = "binary"
	modeInProcess   = "in-process"
)

// buildAirlock builds cmd/airlock into dir (the bench must run from inside
// the module, as `go run ./cmd/airlock-bench` does) unless bin is given.
func buildAirlock(dir, bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	out := filepath.Join(dir, "airlock")
	progress("building the airlock binary (go build ./cmd/airlock)")
	cmd := exec.Command("go", "build", "-o", out, "github.com/airlock/airlock/cmd/airlock")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build airlock: %w (run from the repository, or pass --airlock-bin PATH)", err)
	}
	return out, nil
}

// airlockHome is a home directory made by the CLI.
type airlockHome struct {
	bin   string
	dir   string
	token string // the bench agent's proxy token
	admin string // the admin token (pprof on the admin listener needs it)
	env   []string
}

// newHome runs `airlock init`, `airlock agent add bench` and `airlock
// vault set bench/token` in dir/home and writes the bench policy.
func newHome(bin, dir, upstreamCA string, hosts []string) (*airlockHome, error) {
	h := &airlockHome{bin: bin, dir: filepath.Join(dir, "home")}
	h.env = append(os.Environ(), "AIRLOCK_HOME="+h.dir, "AIRLOCK_PASSPHRASE="+benchPassphrase,
		"AIRLOCK_INSECURE_FAST_KDF=1", "SSL_CERT_FILE="+upstreamCA)
	if _, err := h.cli(nil, "init"); err != nil {
		return nil, err
	}
	out, err := h.cli(nil, "agent", "add", benchAgent)
	if err != nil {
		return nil, err
	}
	u := strings.TrimSpace(string(out))
	_, rest, ok := strings.Cut(u, "://"+benchAgent+":")
	if !ok {
		return nil, fmt.Errorf("airlock agent add printed no proxy URL")
	}
	h.token, _, _ = strings.Cut(rest, "@")
	if out, err = h.cli(nil, "admin", "token"); err != nil {
		return nil, err
	}
	h.admin = strings.TrimSpace(string(out))
	if err := h.vaultSet("sk-bench-" + hexString(randomBytes(16))); err != nil {
		return nil, err
	}
	return h, h.writePolicy(hosts, 0)
}

// cli runs one airlock command in the home with stdin.
func (h *airlockHome) cli(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("airlock %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// vaultSet stores a new value of the bench credential (the running serve
// reloads the vault).
func (h *airlockHome) vaultSet(value string) error {
	_, err := h.cli([]byte(value), "vault", "set", benchCredential)
	return err
}

func (h *airlockHome) policyPath() string { return filepath.Join(h.dir, "policy.yaml") }

// writePolicy writes the bench policy; gen goes into a comment so every
// write changes the file's hash (the soak's reloads).
func (h *airlockHome) writePolicy(hosts []string, gen int) error {
	p := fmt.Sprintf("# airlock-bench policy, generation %d\n%s", gen, benchPolicy(hosts))
	if err := os.WriteFile(h.policyPath(), []byte(p), 0o600); err != nil {
		return fmt.Errorf("write bench policy: %w", err)
	}
	return nil
}

// binProc is a running `airlock serve`.
type binProc struct {
	cmd     *exec.Cmd
	proxy   string // proxy listener host:port
	admin   string // admin listener host:port
	logPath string
	token   string // admin token
	stopped bool
}

// serveBinary starts `airlock serve` on loopback ports chosen by the
// kernel (read back from its "listening" line), logging JSON to a file,
// with pprof on the admin listener and extra flags.
func serveBinary(h *airlockHome, dir string, extra ...string) (*binProc, error) {
	p := &binProc{logPath: filepath.Join(dir, "airlock-serve.log"), token: h.admin}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("airlock log file: %w", err)
	}
	defer logf.Close()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--pprof", "--log-format", "json"}, extra...)
	p.cmd = proxyCommand(h.bin, args...)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = h.env, logf, logf
	raiseNoFile()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start airlock serve: %w", err)
	}
	if err := p.waitListening(30 * time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitListening polls the log file for serve's "listening" line.
func (p *binProc) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		f, err := os.Open(p.logPath)
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l struct{ Msg, Proxy, Admin string }
				if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
					p.proxy, p.admin = l.Proxy, l.Admin
					f.Close()
					return nil
				}
			}
			f.Close()
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tail, _ := os.ReadFile(p.logPath)
	return fmt.Errorf("airlock serve did not start listening: %s", lastLines(tail, 5))
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (p *binProc) pid() int { return p.cmd.Process.Pid }

// stats reads allocations from /metrics (the Go collector) and RSS from
// /proc/PID/status.
func (p *binProc) stats() (childStats, error) {
	var s childStats
	m, err := p.metrics()
	if err != nil {
		return s, err
	}
	s.Mallocs, s.TotalAlloc = uint64(m["go_memstats_mallocs_total"]), uint64(m["go_memstats_alloc_bytes_total"])
	s.NumGC = uint32(m["go_gc_duration_seconds_count"])
	s.VmHWMKiB, s.VmRSSKiB = procStatusOf(p.pid())
	return s, nil
}

// metrics scrapes the admin /metrics into name (with labels) → value.
func (p *binProc) metrics() (map[string]float64, error) {
	b, err := p.adminGet("/metrics")
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}

var adminClient = &http.Client{}

func (p *binProc) adminGet(path string) ([]byte, error) {
	return p.adminGetWithin(path, 30*time.Second)
}

// adminGetWithin is adminGet with its own deadline (a CPU profile takes
// as long as it asks for).
func (p *binProc) adminGetWithin(path string, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.admin+path, nil)
	if err != nil {
		return nil, fmt.Errorf("airlock admin %s: %w", path, err)
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("airlock admin %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("airlock admin %s: status %d", path, resp.StatusCode)
	}
	return b, err
}

// goroutines is the total of pprof's goroutine profile (admin --pprof).
func (p *binProc) goroutines() (int, error) {
	b, err := p.adminGet("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	_, n, ok := bytes.Cut(line, []byte("total "))
	if !ok {
		return 0, errors.New("goroutine profile without a total")
	}
	return strconv.Atoi(string(bytes.TrimSpace(n)))
}

func (p *binProc) resetHWM() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0)
}

// reload asks serve to reload now (SIGHUP).
func (p *binProc) reload() error { return p.cmd.Process.Signal(syscall.SIGHUP) }

// stop sends SIGTERM and waits (serve drains, then exits).
func (p *binProc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// procStatusOf reads VmHWM and VmRSS (KiB) of process pid.
func procStatusOf(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	return parseStatus(b)
}

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// procCPU is the user plus system CPU time process pid has used so far
// (all its threads), 0 when the system has no /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line; the command name (field 2) may hold spaces, so the
// fields are counted from its closing parenthesis.
func parseStatCPU(b []byte) time.Duration {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / userHZ
}

// raiseNoFile lifts this process's soft RLIMIT_NOFILE to its hard limit
// (children inherit it): many streams need many descriptors.
func raiseNoFile() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return l.Cur
}

// cpuProfile saves a CPU profile of seconds to path (admin --pprof).
func (p *binProc) cpuProfile(path string, seconds int) {
	b, err := p.adminGetWithin("/debug/pprof/profile?seconds="+strconv.Itoa(seconds), time.Duration(seconds+30)*time.Second)
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		progress("airlock CPU profile: %v", err)
	}
}

// allocsProfile saves the allocation profile (since the process started)
// to path.
func (p *binProc) allocsProfile(path string) {
	b, err := p.adminGet("/debug/pprof/allocs")
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		progress("airlock allocation profile: %v", err)
	}
}

// proxyCPUs, when set (--proxy-cpus), pins every proxy process to these
// CPUs with taskset (run the bench itself under `taskset -c OTHER` so the
// load client and the upstream keep to the other CPUs).
var proxyCPUs string

// proxyCommand is exec.Command for a proxy process, pinned when asked.
func proxyCommand(name string, args ...string) *exec.Cmd {
	if proxyCPUs == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", proxyCPUs, name}, args...)...)
}
