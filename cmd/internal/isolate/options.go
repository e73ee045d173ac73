package isolate

// The types and errors of every platform; the namespaces themselves are
// Linux's (run_linux.go), other systems report ErrUnsupportedOS
// (run_other.go).

import (
	"errors"
	"net/netip"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/transparent"
)

// Sentinel errors of Run.
var (
	// ErrNotRoot: root mode needs euid 0 (CAP_NET_ADMIN and CAP_SYS_ADMIN).
	ErrNotRoot = errors.New("isolation needs root")
	// ErrMissingTool: nft, ip or nsenter is not installed.
	ErrMissingTool = errors.New("isolation needs the nft, ip and nsenter tools")
	// ErrNoUserNS: unprivileged user namespaces are disabled.
	ErrNoUserNS = errors.New("unprivileged user namespaces are disabled")
	// ErrUnsupportedOS: isolation is built from Linux namespaces and
	// nftables; other systems run agents through the proxy variables.
	ErrUnsupportedOS = errors.New("isolation needs Linux (namespaces and nftables)")
)

// Network is the addresses of one run, given to Options.Env.
type Network struct {
	Host  netip.Addr // airlock's end: the only address the child reaches
	Child netip.Addr
}

// Mode selects how the namespaces are built.
type Mode int

// Modes. ModeAuto is root mode as root, user mode otherwise.
const (
	ModeAuto Mode = iota
	ModeRoot
	ModeUser
)

func (m Mode) String() string {
	switch m {
	case ModeRoot:
		return "root"
	case ModeUser:
		return "unprivileged"
	}
	return "auto"
}

// Options configures [Run].
type Options struct {
	// Mode is root (veth + host nftables) or user (user namespace, the
	// doors' sockets created inside and handed out); ModeAuto picks root
	// as root, user otherwise.
	Mode Mode
	// Argv is CMD and its arguments.
	Argv []string
	// Env builds CMD's environment once the addresses are known (proxy
	// variables must name Host, not localhost, which is the child's own
	// loopback).
	Env func(Network) []string
	// Hide lists directories covered by an empty tmpfs (the airlock home).
	Hide []string
	// Files are written inside the child's view after hiding, at their
	// paths (the CA bundle the child's SSL_CERT_FILE names).
	Files map[string][]byte
	// Agent names the run in the transparent listener.
	Agent string
	// Handler receives every TCP connection the child opens. The names of
	// connections without SNI/Host are filled from the DNS mapping.
	Handler transparent.Handler
	// ProxyAddr is the explicit proxy on the host (e.g. 127.0.0.1:7600);
	// the child's proxy variables name Host:ProxyPort, and connections
	// there (marked Conn.Proxy) go to ProxyHandler, or are spliced to
	// ProxyAddr unchanged. Any other port on Host is refused (host
	// services stay unreachable).
	ProxyAddr string
	ProxyPort uint16
	// ProxyHandler, when set, receives the connections to Host:ProxyPort
	// instead of the splice to ProxyAddr (Handoff gives them to serve).
	ProxyHandler transparent.Handler
	// AllowName filters DNS names (nil answers every valid name).
	AllowName func(string) bool
	// Stdin, Stdout, Stderr default to the process's own.
	Stdin, Stdout, Stderr *os.File
	Log                   *zap.Logger
	Registerer            prometheus.Registerer
	// Ready, when set, is called with the network once CMD is starting.
	Ready func(Network)
}
