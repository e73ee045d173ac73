package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes of `airlock run` when CMD cannot start, as shells use them.
const (
	exitNotExecutable = 126
	exitNotFound      = 127
)

func runCmd(g *globals, fs *flagSet) runFunc {
	fs.interspersed = false
	agent := fs.String("agent", "", "agent `NAME` (default: the only agent)")
	iso := addRunIsolateFlags(fs) // isolatecmd.go
	return func(args []string) error {
		if *iso.isolate {
			if _, err := lookCommand(args[0]); err != nil {
				return err
			}
			return runIsolated(g, *agent, *iso.ttl, args)
		}
		vars, err := agentEnv(g.home, *agent)
		if err != nil {
			return err
		}
		path, err := lookCommand(args[0])
		if err != nil {
			return err
		}
		if err := checkProxyUp(defaultListen()); err != nil {
			return err
		}
		warnOldNode(path)
		return runChild(path, args, vars)
	}
}

// lookCommand finds CMD on PATH: exit 127 when there is none, 126 when it
// cannot be executed, with the error said before anything runs.
func lookCommand(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return "", withExitCode(withHint(fmt.Errorf("run %s: permission denied", name),
			"make it executable (chmod +x) or run it through its interpreter, e.g. `airlock run -- sh "+name+"`"), exitNotExecutable)
	}
	if fi, serr := os.Stat(name); serr == nil && strings.Contains(name, "/") && (fi.IsDir() || fi.Mode()&0o111 == 0) {
		return "", withExitCode(withHint(fmt.Errorf("run %s: not an executable file", name),
			"make it executable (chmod +x) or run it through its interpreter"), exitNotExecutable)
	}
	return "", withExitCode(withHint(fmt.Errorf("run %s: command not found", name),
		"check the command name and your PATH"), exitNotFound)
}

// checkProxyUp refuses to start the agent when nothing listens on the
// proxy address: its requests would all fail with "connection refused".
func checkProxyUp(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return withHint(fmt.Errorf("nothing is listening on the proxy address %s", addr),
			"start `airlock serve` first (another terminal, or a service), or set AIRLOCK_LISTEN to the address it listens on")
	}
	_ = c.Close()
	return nil
}

// childEnv is the agent's environment: airlock's own settings and secrets
// (every AIRLOCK_* variable: passphrase, key file, home...) removed, the
// routing and trust variables vars set.
func childEnv(parent []string, vars []envVar) []string {
	set := map[string]bool{}
	for _, v := range vars {
		set[v.Key] = true
	}
	var env []string
	for _, kv := range parent {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(k), "AIRLOCK_") || set[k] {
			continue
		}
		env = append(env, kv)
	}
	for _, v := range vars {
		env = append(env, v.Key+"="+v.Value)
	}
	return env
}

// runChild runs argv (argv[0] found at path) in childEnv, forwarding
// SIGINT and SIGTERM, and returns its exit status as an exitCodeError.
func runChild(path string, argv []string, vars []envVar) error {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = Stdin, Stdout, Stderr
	cmd.Env = childEnv(os.Environ(), vars)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		code := exitNotFound
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			code = exitNotExecutable
		}
		return withExitCode(withHint(fmt.Errorf("run %s: %w", argv[0], err), "check the command name and your PATH"), code)
	}
	done := make(chan struct{})
	defer close(done)
	go forwardSignals(cmd.Process, sigs, done)
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitCodeError{code: 128 + int(ws.Signal())}
		}
		return &exitCodeError{code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return nil
}

// forwardSignals relays signals to the child until done closes.
func forwardSignals(p *os.Process, sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case s := <-sigs:
			_ = p.Signal(s)
		case <-done:
			return
		}
	}
}

// warnOldNode prints one line when CMD is a Node older than 22.21, whose
// fetch ignores HTTPS_PROXY even with NODE_USE_ENV_PROXY=1.
func warnOldNode(path string) {
	base := filepath.Base(path)
	if base != "node" && base != "nodejs" {
		return
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return
	}
	v := strings.TrimSpace(string(out))
	if nodeHonoursEnvProxy(v) {
		return
	}
	fmt.Fprintf(Stderr, "airlock: warning: Node %s ignores HTTPS_PROXY (NODE_USE_ENV_PROXY needs Node 22.21 or later): its fetch may go around airlock; run it with `airlock run --isolate`, or use undici's EnvHttpProxyAgent (examples/agents/agent.mjs)\n", v)
}

// nodeHonoursEnvProxy reports whether `node --version` output v (v22.21.0)
// is a Node that honours NODE_USE_ENV_PROXY=1: 22.21 or later. An
// unreadable version is given the benefit of the doubt.
func nodeHonoursEnvProxy(v string) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return true
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return major > 22 || (major == 22 && minor >= 21)
}
