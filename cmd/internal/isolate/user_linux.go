package isolate

// Unprivileged mode: a user namespace owns the network namespace, so the
// init process (root inside, nobody outside) builds the network itself:
// loopback, a veth pair whose both ends stay inside (a default route that
// leads nowhere), nftables rules redirecting every TCP connection and UDP
// port 53 to two sockets it creates on the namespace's loopback. It hands
// those sockets to airlock over an inherited Unix socket (SCM_RIGHTS);
// airlock accepts on them from outside, and SO_ORIGINAL_DST works because
// each accepted socket lives in the child's namespace. The namespace has
// no link to the host at all: even with the rules removed nothing leaves.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Addresses inside a user-mode namespace (private to it).
var (
	userHost  = netip.MustParseAddr("100.127.255.253")
	userChild = netip.MustParseAddr("100.127.255.254")
)

// UserSupported reports why unprivileged mode cannot run here, or nil.
func UserSupported() error {
	for path, name := range map[string]string{
		"/proc/sys/kernel/unprivileged_userns_clone": "kernel.unprivileged_userns_clone",
		"/proc/sys/user/max_user_namespaces":         "user.max_user_namespaces",
	} {
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == "0" {
			return fmt.Errorf("%w (%s=0)", ErrNoUserNS, name)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); err == nil && strings.TrimSpace(string(b)) == "1" && os.Geteuid() != 0 {
		return fmt.Errorf("%w (kernel.apparmor_restrict_unprivileged_userns=1)", ErrNoUserNS)
	}
	for _, tool := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH", ErrMissingTool, tool)
		}
	}
	return nil
}

func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "isolate-doors"), os.NewFile(uintptr(fds[1]), "isolate-doors-child"), nil
}

// superviseUser configures the init, receives the doors' sockets and
// serves them until the init exits.
func superviseUser(ctx context.Context, o Options, initCmd *exec.Cmd, cfgW, sockP *os.File, waited <-chan int) (int, error) {
	n := Network{Host: userHost, Child: userChild}
	resolv, err := writeResolvConf(n.Host)
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(filepath.Dir(resolv))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	cfg := initConfig{Argv: o.Argv, Hide: o.Hide, Files: o.Files, ResolvConf: resolv, User: true}
	if o.Env != nil {
		cfg.Env = o.Env(n)
	}
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return 1, fmt.Errorf("isolate: configure init: %w", err)
	}
	cfgW.Close()
	ln, pc, err := recvDoors(sockP)
	if err != nil {
		return 1, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, err := serveDoors(ctx, o, n.Host, ln, pc, &DNS{Allow: o.AllowName})
	if err != nil {
		return 1, err
	}
	defer stop()
	if o.Ready != nil {
		o.Ready(n)
	}
	return waitInit(ctx, initCmd, sigs, waited), nil
}

// recvDoors receives the listener and the DNS socket from the init.
func recvDoors(sock *os.File) (net.Listener, net.PacketConn, error) {
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
	if err != nil || n == 0 {
		return nil, nil, fmt.Errorf("isolate: the namespace init failed before handing over its sockets (%v)", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, nil, fmt.Errorf("isolate: bad hand-over from the init: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 2 {
		return nil, nil, fmt.Errorf("isolate: bad hand-over from the init: %v", err)
	}
	lf, pf := os.NewFile(uintptr(fds[0]), "door"), os.NewFile(uintptr(fds[1]), "dns")
	defer lf.Close()
	defer pf.Close()
	ln, err := net.FileListener(lf)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate: door socket: %w", err)
	}
	pc, err := net.FilePacketConn(pf)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("isolate: dns socket: %w", err)
	}
	return ln, pc, nil
}

// userNetwork runs in the init (user mode): it builds the namespace's
// network, creates the doors' sockets, installs the redirect, and sends
// the sockets to airlock over fd 4.
func userNetwork() error {
	if err := ipBatch(0, fmt.Sprintf("link set lo up\nlink add eth0 type veth peer name airlock0\n"+
		"link set airlock0 up\naddr add %s/30 dev eth0\nlink set eth0 up\nroute add default dev eth0\n", userChild)); err != nil {
		return err
	}
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("door listener: %w", err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("dns socket: %w", err)
	}
	tport, dport := ln.Addr().(*net.TCPAddr).Port, pc.LocalAddr().(*net.UDPAddr).Port
	if err := nft(userRules(tport, dport)); err != nil {
		return err
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return fmt.Errorf("door listener: %w", err)
	}
	pf, err := pc.(*net.UDPConn).File()
	if err != nil {
		return fmt.Errorf("dns socket: %w", err)
	}
	msg := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(tport)), uint16(dport))
	if err := unix.Sendmsg(4, msg, unix.UnixRights(int(lf.Fd()), int(pf.Fd())), nil, 0); err != nil {
		return fmt.Errorf("hand the sockets to airlock: %w", err)
	}
	for _, c := range []interface{ Close() error }{lf, pf, ln, pc} {
		c.Close()
	}
	unix.Close(4)
	return nil
}

// userRules redirects every non-loopback TCP connection and UDP 53 to the
// doors and drops whatever else would leave loopback.
func userRules(tport, dport int) string {
	return fmt.Sprintf(`table inet airlock {
	chain airlock_nat {
		type nat hook output priority -100; policy accept;
		meta nfproto ipv4 ip daddr != 127.0.0.0/8 udp dport 53 redirect to :%[2]d
		meta nfproto ipv4 ip daddr != 127.0.0.0/8 meta l4proto tcp redirect to :%[1]d
	}
	chain airlock_out {
		type filter hook output priority 0; policy drop;
		oifname "lo" accept
		ct status dnat accept
	}
}
`, tport, dport)
}
