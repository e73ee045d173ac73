package isolate

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// initEnv marks the re-executed init process.
const initEnv = "AIRLOCK_ISOLATE_INIT"

// initConfig is what Run sends the init process over fd 3 once the
// network is ready.
type initConfig struct {
	Argv       []string
	Env        []string
	Hide       []string
	Files      map[string][]byte
	ResolvConf string // file bind-mounted over /etc/resolv.conf
	User       bool   // unprivileged mode: build the network here, hand out the doors
}

// MaybeInit turns this process into the namespace init when Run started
// it; otherwise it returns at once. Call it first in main (or TestMain).
func MaybeInit() {
	if os.Getenv(initEnv) != "1" {
		return
	}
	code, err := runInit()
	if err != nil {
		fmt.Fprintf(os.Stderr, "airlock: error: isolate: %v\n", err)
		if code == 0 {
			code = 126
		}
	}
	os.Exit(code)
}

func runInit() (int, error) {
	cfgFile := os.NewFile(3, "isolate-config")
	raw, err := io.ReadAll(cfgFile)
	cfgFile.Close()
	if err != nil || len(raw) == 0 {
		return 0, fmt.Errorf("no configuration from airlock (it exited during setup)")
	}
	var cfg initConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return 0, fmt.Errorf("read configuration: %w", err)
	}
	if cfg.User {
		if err := userNetwork(); err != nil {
			return 0, fmt.Errorf("namespace network: %w", err)
		}
	}
	if err := setupMounts(cfg); err != nil {
		return 0, err
	}
	_ = unix.Sethostname([]byte("airlock-isolated"))
	return runChild(cfg)
}

// setupMounts hides the airlock home, remounts /proc and sets resolv.conf.
func setupMounts(cfg initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, dir := range cfg.Hide {
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=4m"); err != nil {
			return fmt.Errorf("hide %s: %w", dir, err)
		}
	}
	for path, data := range cfg.Files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write back %s: %w", path, err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write back %s: %w", path, err)
		}
	}
	if cfg.ResolvConf != "" {
		target, err := filepath.EvalSymlinks("/etc/resolv.conf")
		if err != nil {
			target = "/etc/resolv.conf"
		}
		if err := unix.Mount(cfg.ResolvConf, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind resolv.conf over %s: %w", target, err)
		}
	}
	return nil
}

// dropCaps empties the calling thread's bounding and ambient sets and sets
// no_new_privs; a process forked from this thread inherits that.
func dropCaps() error {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	return nil
}

// runChild starts CMD (as PID 2), forwards signals, reaps every orphan and
// returns CMD's status.
func runChild(cfg initConfig) (int, error) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	path, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		return 127, err
	}
	attr := &os.ProcAttr{Env: cfg.Env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{}}
	if term.IsTerminal(0) {
		attr.Sys.Setpgid, attr.Sys.Foreground, attr.Sys.Ctty = true, true, 0
	}
	started := make(chan error, 1)
	var proc *os.Process
	go func() {
		runtime.LockOSThread() // the thread ends with this goroutine: its caps are gone
		if err := dropCaps(); err != nil {
			started <- err
			return
		}
		var err error
		proc, err = os.StartProcess(path, cfg.Argv, attr)
		started <- err
	}()
	if err := <-started; err != nil {
		return 126, fmt.Errorf("start %s: %w", cfg.Argv[0], err)
	}
	go func() {
		for s := range sigs {
			_ = proc.Signal(s)
		}
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1, fmt.Errorf("wait: %w", err)
		}
		if pid == proc.Pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
	}
}

// lookPath resolves argv0 against the child's PATH.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, argv0)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in PATH", argv0)
}
