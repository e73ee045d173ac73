package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/airlock/airlock/proxy/transparent"
)

// Run runs o.Argv isolated and returns its exit status (128+N when killed
// by signal N). Everything Run set up is removed before it returns.
func Run(ctx context.Context, o Options) (int, error) {
	mode, err := pickMode(o.Mode)
	if err != nil {
		return 1, err
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if mode == ModeRoot {
		collectStale()
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return 1, fmt.Errorf("isolate: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	extra := []*os.File{cfgR}
	var sockP *os.File
	if mode == ModeUser {
		p, c, err := socketPair()
		if err != nil {
			return 1, err
		}
		defer p.Close()
		defer c.Close()
		sockP, extra = p, append(extra, c)
	}
	initCmd, err := startInit(o, mode, extra)
	if err != nil {
		return 1, err
	}
	for _, f := range extra {
		f.Close()
	}
	waited := make(chan int, 1)
	go func() { waited <- waitStatus(initCmd.Wait()) }()
	var code int
	if mode == ModeUser {
		code, err = superviseUser(ctx, o, initCmd, cfgW, sockP, waited)
	} else {
		code, err = superviseRun(ctx, o, initCmd, cfgW, waited)
	}
	if err != nil {
		_ = initCmd.Process.Kill()
		<-waited
		return 1, err
	}
	return code, nil
}

// Available resolves ModeAuto (root mode as root, unprivileged otherwise)
// and reports why the machine cannot run that mode, or nil.
func Available(m Mode) (Mode, error) { return pickMode(m) }

// pickMode resolves ModeAuto and checks the machine supports the mode.
func pickMode(m Mode) (Mode, error) {
	if m == ModeAuto {
		m = ModeUser
		if os.Geteuid() == 0 {
			m = ModeRoot
		}
	}
	if m == ModeRoot {
		return m, Supported()
	}
	return m, UserSupported()
}

// startInit re-executes this binary as the namespace init.
func startInit(o Options, mode Mode, extra []*os.File) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("isolate: find own binary: %w", err)
	}
	c := exec.Command(self)
	c.Env = []string{initEnv + "=1", "PATH=" + os.Getenv("PATH")} // PATH: the init runs ip and nft in user mode
	if g, ok := os.LookupEnv("GORACE"); ok {
		c.Env = append(c.Env, "GORACE="+g) // race-detector options only; nothing secret
	}
	c.Stdin, c.Stdout, c.Stderr = orStd(o.Stdin, os.Stdin), orStd(o.Stdout, os.Stdout), orStd(o.Stderr, os.Stderr)
	c.ExtraFiles = extra
	c.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	if mode == ModeUser {
		c.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		c.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		c.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		c.SysProcAttr.GidMappingsEnableSetgroups = false
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("isolate: start namespaces: %w", err)
	}
	return c, nil
}

// superviseRun sets up the network and the doors, releases the init and
// waits for it.
func superviseRun(ctx context.Context, o Options, initCmd *exec.Cmd, cfgW *os.File, waited <-chan int) (int, error) {
	n, err := setupNetwork(initCmd.Process.Pid)
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := n.teardown(); err != nil {
			o.Log.Error("isolate cleanup", zap.Error(err))
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dns := &DNS{Allow: o.AllowName}
	stopDoors, tport, dport, err := startDoors(ctx, o, n, dns)
	if err != nil {
		return 1, err
	}
	defer stopDoors()
	if err := n.install(tport, dport); err != nil {
		return 1, err
	}
	resolv, err := writeResolvConf(n.Host)
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(filepath.Dir(resolv))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	cfg := initConfig{Argv: o.Argv, Hide: o.Hide, Files: o.Files, ResolvConf: resolv}
	if o.Env != nil {
		cfg.Env = o.Env(Network{Host: n.Host, Child: n.Child})
	}
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return 1, fmt.Errorf("isolate: configure init: %w", err)
	}
	cfgW.Close()
	if o.Ready != nil {
		o.Ready(Network{Host: n.Host, Child: n.Child})
	}
	return waitInit(ctx, initCmd, sigs, waited), nil
}

// waitInit forwards signals to the init until it exits, and returns its
// status.
func waitInit(ctx context.Context, initCmd *exec.Cmd, sigs <-chan os.Signal, waited <-chan int) int {
	for {
		select {
		case s := <-sigs:
			_ = initCmd.Process.Signal(s)
		case <-ctx.Done():
			_ = initCmd.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		case code := <-waited:
			reclaimTerminal()
			return code
		}
	}
}

// startDoors listens on the host end: TCP for the transparent door, UDP
// for DNS.
func startDoors(ctx context.Context, o Options, n *network, dns *DNS) (func(), uint16, uint16, error) {
	ln, err := net.Listen("tcp4", net.JoinHostPort(n.Host.String(), "0"))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("isolate: listen on %s: %w", n.Host, err)
	}
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(n.Host.String(), "0"))
	if err != nil {
		ln.Close()
		return nil, 0, 0, fmt.Errorf("isolate: dns listen on %s: %w", n.Host, err)
	}
	stop, err := serveDoors(ctx, o, n.Host, ln, pc, dns)
	if err != nil {
		return nil, 0, 0, err
	}
	return stop, uint16(ln.Addr().(*net.TCPAddr).Port), uint16(pc.LocalAddr().(*net.UDPAddr).Port), nil
}

// serveDoors runs the transparent door on ln and DNS on pc until the
// returned stop is called. host is airlock's address as the child sees it.
func serveDoors(ctx context.Context, o Options, host netip.Addr, ln net.Listener, pc net.PacketConn, dns *DNS) (func(), error) {
	h := o.Handler
	tl, err := transparent.New(ln, transparent.Config{Agent: o.Agent, Log: o.Log, Registerer: o.Registerer},
		func(ctx context.Context, c *transparent.Conn) {
			if c.OrigDst.Addr() == host {
				hostConn(ctx, o, c)
				return
			}
			if c.ServerName == "" {
				c.ServerName, _ = dns.Name(c.OrigDst.Addr())
			}
			h(ctx, c)
		})
	if err != nil {
		ln.Close()
		pc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = tl.Serve(ctx); done <- struct{}{} }()
	go func() { _ = dns.Serve(ctx, pc); done <- struct{}{} }()
	return func() { cancel(); <-done; <-done }, nil
}

// writeResolvConf writes a resolv.conf naming the responder.
func writeResolvConf(host netip.Addr) (string, error) {
	dir, err := os.MkdirTemp("", "airlock-isolate-")
	if err != nil {
		return "", fmt.Errorf("isolate: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("isolate: %w", err)
	}
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver "+host.String()+"\noptions attempts:2 timeout:2\n"), 0o644); err != nil {
		return "", fmt.Errorf("isolate: %w", err)
	}
	return p, nil
}

// waitStatus maps Wait's result to an exit code.
func waitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// reclaimTerminal makes airlock's process group the terminal's foreground
// again after CMD held it.
func reclaimTerminal() {
	if !term.IsTerminal(0) {
		return
	}
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}

func orStd(f, def *os.File) *os.File {
	if f != nil {
		return f
	}
	return def
}

// Supported reports why root mode cannot run here, or nil.
func Supported() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (running as uid %s)", ErrNotRoot, strconv.Itoa(os.Geteuid()))
	}
	for _, tool := range []string{"nft", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH", ErrMissingTool, tool)
		}
	}
	return nil
}

// hostConn handles a connection to airlock's own end: the explicit proxy
// port goes to o.ProxyHandler or is spliced to the proxy, anything else is
// refused.
func hostConn(ctx context.Context, o Options, c *transparent.Conn) {
	if o.ProxyAddr == "" || c.OrigDst.Port() != o.ProxyPort {
		o.Log.Warn("isolated connection to the host refused", zap.String("orig_dst", c.OrigDst.String()))
		c.Close()
		return
	}
	c.Proxy = true
	if o.ProxyHandler != nil {
		o.ProxyHandler(ctx, c)
		return
	}
	spliceToProxy(ctx, o.ProxyAddr, c, o.Log)
}
