package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/audit"
)

// opsFlags are the operations flags of `airlock serve`: audit file,
// profiling, and (always on) hot reload of the policy and the vault.
type opsFlags struct {
	auditLog       string
	auditMaxSize   int64
	pprof          bool
	protectMetrics bool
}

func (o *opsFlags) register(fs *flagSet) {
	fs.StringVar(&o.auditLog, "audit-log", "", "also write hash-chained audit lines to `FILE` (check with `airlock audit verify`)")
	fs.Int64Var(&o.auditMaxSize, "audit-log-max-size", 100<<20, "rotate the audit log at this many bytes (0: never)")
	fs.BoolVar(&o.pprof, "pprof", false, "serve /debug/pprof/ on the admin listener (needs the admin token)")
	fs.BoolVar(&o.protectMetrics, "protect-metrics", false, "make /metrics need the admin token too")
}

// adminHandler is the admin mux behind the admin token, with pprof when
// asked for and the console when there is one.
func (o *opsFlags) adminHandler(srv *proxy.Server, token string, con http.Handler) http.Handler {
	return srv.AdminHandlerWith(proxy.AdminOptions{Token: token, ProtectMetrics: o.protectMetrics, Pprof: o.pprof, Console: con})
}

// startOps opens the audit file and starts the reload watcher (polling
// plus SIGHUP). The returned stop ends the watcher and flushes the audit
// file; call it after the server has drained.
func startOps(srv *proxy.Server, o *serveOptions, log *zap.Logger) (stop func(), err error) {
	srv.SetVersion(version)
	var alog *audit.Log
	if o.ops.auditLog != "" {
		key, err := auditKey(srv.Vault())
		if err != nil {
			return nil, err
		}
		alog, err = audit.Open(audit.Options{Path: o.ops.auditLog, Key: key, MaxSize: o.ops.auditMaxSize, Log: log,
			Replica: o.fleet.auditReplica()}) // servefleet.go: the chain's name in a fleet
		if err != nil {
			return nil, withHint(err, "pick a writable file with --audit-log")
		}
		srv.SetAuditLog(alog)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := srv.NewWatcher(o.policyPath)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	go func() {
		for {
			select {
			case <-hup:
				w.Reload()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
		if alog != nil {
			if err := alog.Close(); err != nil {
				log.Error("audit log close", zap.Error(err))
			}
		}
	}, nil
}
