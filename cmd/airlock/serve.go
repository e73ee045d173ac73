package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/cmd/internal/gctune"
	"github.com/airlock/airlock/cmd/internal/stack"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/audit"
)

// serveOptions are the flags of `airlock serve`.
type serveOptions struct {
	listen     string
	admin      string
	policyPath string
	logFormat  string
	drain      time.Duration
	ops        opsFlags          // audit log, pprof (serveops.go)
	hard       hardFlags         // timeouts, per-agent caps (servehard.go)
	rpc        rpcFlags          // SanctumAI door (serverpc.go)
	trans      *transparentFlags // --transparent door (transparentcmd.go)
	home       home              // the hand-off socket's directory (handoffcmd.go)
	fleet      fleetFlags        // --state: shared state in Redis (servefleet.go)

	adminToken string       // from the vault (admintoken.go), set by buildServer
	stack      *stack.Stack // built by buildServer
}

// serveCmd declares the flags of `airlock serve`.
func serveCmd(g *globals, fs *flagSet) runFunc {
	o := &serveOptions{home: g.home}
	fs.StringVar(&o.listen, "listen", envOr("AIRLOCK_LISTEN", "127.0.0.1:7600"), "proxy listen `ADDR` (agents connect here)")
	fs.StringVar(&o.admin, "admin", envOr("AIRLOCK_ADMIN", "127.0.0.1:7700"), "admin listener `ADDR` (/healthz, /readyz, /metrics), or off")
	fs.StringVar(&o.policyPath, "policy", g.home.PolicyPath(), "policy `FILE`")
	fs.StringVar(&o.logFormat, "log-format", "auto", "log `FORMAT`: json, console, or auto (console when stderr is a terminal, else json)")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "how long shutdown waits for in-flight requests")
	o.ops.register(fs)
	o.hard.register(fs)
	o.rpc.register(fs, g.home)
	o.trans = addServeTransparentFlags(fs)
	o.fleet.register(fs)
	return func([]string) error {
		hideEnvPassphrase() // secretenv.go: re-exec without AIRLOCK_PASSPHRASE
		if err := o.resolveLogFormat(Stderr); err != nil {
			return err
		}
		return cmdServe(g, o)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// newLogger writes zap lines to w: JSON for machines, or one plain line per
// event for humans.
func newLogger(format string, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.RFC3339NanoTimeEncoder
	if format == "console" {
		return zap.New(newConsoleCore(zapcore.AddSync(w), zapcore.InfoLevel)) // consolelog.go
	}
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel))
}

func cmdServe(g *globals, o *serveOptions) error {
	logw := audit.NewAsyncWriter(Stderr, 0) // log lines off the request path; drops are counted
	defer func() { _ = logw.Close() }()
	log := newLogger(o.logFormat, logw)
	defer func() { _ = log.Sync() }()
	if gctune.Start() { // GC pace for a small heap; GOGC or GOMEMLIMIT set: theirs
		log.Info("gc pacing adaptive", zap.Int("gogc", gctune.Current()))
	} else {
		log.Info("gc pacing from GOGC/GOMEMLIMIT", zap.String("GOGC", os.Getenv("GOGC")), zap.String("GOMEMLIMIT", os.Getenv("GOMEMLIMIT")))
	}
	srv, err := buildServer(g, o, log)
	if err != nil {
		return err
	}
	logw.OnDrop(srv.Metrics().LogDropped.Inc)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, g, srv, o, log)
}

// buildServer unlocks the vault, loads the CA and the policy: everything
// that can fail before a port opens.
func buildServer(g *globals, o *serveOptions, log *zap.Logger) (*proxy.Server, error) {
	v, err := openVault(g.home)
	if err != nil {
		return nil, err
	}
	ca, err := loadCA(g.home, v)
	if err != nil {
		return nil, err
	}
	if o.adminToken, err = ensureAdminToken(v); err != nil { // admintoken.go
		return nil, err
	}
	pol, err := policy.Load(o.policyPath)
	if err != nil {
		return nil, withHint(err, "fix the lines above; `airlock policy check "+o.policyPath+"` re-checks the file")
	}
	fleet, err := o.fleet.options(log) // servefleet.go
	if err != nil {
		return nil, err
	}
	st, err := stack.New(stack.Options{Vault: v, CA: ca, Policy: pol, Log: log, Tune: o.hard.apply, // servehard.go
		SourceStatus: sourceStatusPath(g.home),
		UsageFile:    usageStatePath(g.home), // usagecmd.go; closed by srv.Shutdown
		Fleet:        fleet})                 // servefleet.go
	if err != nil {
		if fleet != nil {
			return nil, withHint(err, "check --state (or AIRLOCK_STATE) and that redis answers; without it airlock serves with local state")
		}
		return nil, err
	}
	o.stack = st
	return st.Server, nil
}

// run opens the ports (the proxy port first, so a second serve names it;
// requests wait in its backlog until everything is up), serves until ctx
// ends, then drains.
func run(ctx context.Context, g *globals, srv *proxy.Server, o *serveOptions, log *zap.Logger) error {
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return withHint(fmt.Errorf("proxy listener %s: %w", o.listen, err), "is another `airlock serve` running? stop it, or pick another address with --listen (and AIRLOCK_LISTEN for the agents)")
	}
	defer l.Close()
	stopOps, err := startOps(srv, o, log) // audit file, hot reload, SIGHUP (serveops.go)
	if err != nil {
		return err
	}
	defer stopOps()
	stopRPC, err := startRPC(ctx, srv, o.rpc, log)
	if err != nil {
		return err
	}
	defer stopRPC()
	stopTrans, err := startTransparent(ctx, srv, o.trans, log) // transparentcmd.go
	if err != nil {
		return err
	}
	defer stopTrans()
	defer startHandoff(ctx, srv, handoffPath(o.home), log)() // handoffcmd.go
	var admin *http.Server
	var al net.Listener
	adminAddr := "off"
	if o.admin != "off" {
		al, err = net.Listen("tcp", o.admin)
		if err != nil {
			return withHint(fmt.Errorf("admin listener: %w", err), "pick another address with --admin, or --admin off")
		}
		adminAddr = al.Addr().String()
		srv.ProtectAddr(al.Addr()) // never proxy to our own admin port
		defer al.Close()
	}
	appr, err := startApprovals(g, srv, o, adminAddr, log) // approval queue, console (approve.go)
	if err != nil {
		return err
	}
	defer appr.Close()
	if al != nil {
		admin = &http.Server{Handler: o.ops.adminHandler(srv, o.adminToken, consoleHandler(appr)), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = admin.Serve(al) }()
	}
	fctx, leave := context.WithCancel(context.Background())
	o.stack.JoinFleet(fctx, l.Addr().String(), srv.Status().Version) // no-op without --state
	defer func() { leave(); o.stack.Close() }()
	log.Info("listening", zap.String("proxy", l.Addr().String()), zap.String("admin", adminAddr),
		zap.String("policy", o.policyPath), zap.Int("rules", len(srv.Policy().Rules)))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("drain", o.drain))
	sctx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	err = srv.Shutdown(sctx)
	if admin != nil {
		_ = admin.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("stopped")
	return nil
}
