package main

// `airlock serve --transparent ADDR`: flags and the listener builder. The
// serve command is not edited here; see addServeTransparentFlags' doc.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/transparent"
)

// transparentFlags are serve's flags for the transparent door.
type transparentFlags struct {
	addr    *string
	agent   *string
	tproxy  *bool
	sources sourceFlags
}

// sourceFlags collects repeated --transparent-source CIDR=AGENT.
type sourceFlags []string

func (s *sourceFlags) String() string     { return strings.Join(*s, ",") }
func (s *sourceFlags) Set(v string) error { *s = append(*s, v); return nil }

// addServeTransparentFlags registers the transparent door's flags.
//
// Wiring (cmdServe): `tf := addServeTransparentFlags(fs)` next to the other
// flags; once the server exists,
// `ln, err := tf.listen(log, registry, srv.HandleTransparent)` and, when ln
// is not nil, `go ln.Serve(ctx)` beside the proxy listener (HandleTransparent
// is the server's hand-off into its CONNECT handling).
func addServeTransparentFlags(fs *flagSet) *transparentFlags {
	tf := &transparentFlags{
		addr:   fs.String("transparent", "", "also accept redirected connections (iptables/nft REDIRECT or TPROXY) on ADDR"),
		agent:  fs.String("transparent-agent", "", "agent for redirected connections no --transparent-source names"),
		tproxy: fs.Bool("transparent-tproxy", false, "the redirect is TPROXY, not REDIRECT/DNAT (needs CAP_NET_ADMIN)"),
	}
	fs.Var(&tf.sources, "transparent-source", "CIDR=AGENT: redirected connections from CIDR are AGENT (repeatable; longest prefix wins)")
	return tf
}

// listen opens the door, or returns nil when --transparent was not given.
func (tf *transparentFlags) listen(log *zap.Logger, reg prometheus.Registerer, h transparent.Handler) (*transparent.Listener, error) {
	if *tf.addr == "" {
		if *tf.agent != "" || len(tf.sources) > 0 || *tf.tproxy {
			return nil, withHint(usageErrorf("--transparent-agent, --transparent-source and --transparent-tproxy need --transparent ADDR"), "add --transparent 127.0.0.1:7601 (the port your redirect rule targets)")
		}
		return nil, nil
	}
	if runtime.GOOS != "linux" { // no original destination to read: every connection would fail
		return nil, withHint(fmt.Errorf("--transparent: transparent interception needs Linux (iptables/nftables redirects); this is %s", runtime.GOOS),
			"point the agent at the proxy instead (`airlock run --agent NAME -- CMD` sets HTTPS_PROXY)")
	}
	sources, err := parseSourceAgents(tf.sources)
	if err != nil {
		return nil, err
	}
	if *tf.agent == "" && len(sources) == 0 {
		return nil, withHint(usageErrorf("--transparent needs an agent: redirected connections carry no credential"), "add --transparent-agent NAME, or --transparent-source CIDR=NAME per agent")
	}
	if *tf.agent != "" {
		if err := checkAgentName(*tf.agent); err != nil {
			return nil, err
		}
	}
	var ln net.Listener
	if *tf.tproxy {
		ln, err = transparent.ListenTProxy("tcp", *tf.addr)
	} else {
		ln, err = net.Listen("tcp", *tf.addr)
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("transparent listener: %w", err), "pick a free ADDR for --transparent, the one your redirect rule targets")
	}
	l, err := transparent.New(ln, transparent.Config{Agent: *tf.agent, Sources: sources, TProxy: *tf.tproxy, Log: log, Registerer: reg}, h)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return l, nil
}

// startTransparent opens the --transparent door (nothing without the flag)
// and serves it with srv.HandleTransparent until the returned stop.
func startTransparent(ctx context.Context, srv *proxy.Server, tf *transparentFlags, log *zap.Logger) (stop func(), err error) {
	l, err := tf.listen(log, srv.Metrics().Registry, srv.HandleTransparent)
	if err != nil || l == nil {
		return func() {}, err
	}
	srv.ProtectAddr(l.Addr()) // never proxy to our own door
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		if err := l.Serve(ctx); err != nil {
			log.Error("transparent door stopped", zap.Error(err))
		}
	}()
	log.Info("transparent door listening", zap.String("transparent", l.Addr().String()),
		zap.String("agent", *tf.agent), zap.Int("sources", len(tf.sources)), zap.Bool("tproxy", *tf.tproxy))
	return cancel, nil
}

// parseSourceAgents parses CIDR=AGENT specs.
func parseSourceAgents(specs []string) ([]transparent.SourceAgent, error) {
	var out []transparent.SourceAgent
	for _, s := range specs {
		cidr, agent, ok := strings.Cut(s, "=")
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if !ok || err != nil {
			return nil, withHint(usageErrorf("--transparent-source %q: want CIDR=AGENT", s), "for example --transparent-source 10.42.1.0/24=research-bot")
		}
		if err := checkAgentName(strings.TrimSpace(agent)); err != nil {
			return nil, err
		}
		out = append(out, transparent.SourceAgent{Prefix: p.Masked(), Agent: strings.TrimSpace(agent)})
	}
	return out, nil
}
