// Package stack is the one wiring of an airlock: vault + policy + local CA
// + proxy server (+ the SanctumAI RPC door and the audit file), shared by
// `airlock serve`, `airlock demo` and cmd/airlock-bench so the demo and the
// bench run exactly what serve runs.
package stack

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/rpc"
	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/proxy/state/redisstore"
	"github.com/airlock/airlock/proxy/usage"
	"github.com/airlock/airlock/vault"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// DefaultCertCache is the leaf-certificate cache size of serve.
const DefaultCertCache = 10000

// Options are the parts of one airlock.
type Options struct {
	Vault  *vault.Vault   // unlocked
	CA     *certs.CA      // local CA for MITM leaves
	Policy *policy.Policy // initial policy
	Log    *zap.Logger

	CertCache     int            // leaf cache entries; 0: DefaultCertCache
	UpstreamRoots *x509.CertPool // nil: system roots
	AuditLog      *audit.Log     // optional hash-chained audit file
	// RPC, when set, serves the SanctumAI door on the proxy port (its
	// Registerer defaults to the server's registry, its Logger to Log).
	RPC *rpc.Options
	// UsageFile is where LLM usage and budget state persist (serve: the
	// home's usage.json, which `airlock usage` reads); "": in memory.
	UsageFile string
	// NoUsage switches LLM metering and budgets off (the bench's baseline).
	NoUsage bool
	// Tune adjusts the proxy configuration last (serve's hardening flags).
	Tune func(*proxy.Config)
	// SourceStatus, when set, is the file the credential sources' fetch
	// status is written to every 10 s (what `airlock vault list` and
	// `airlock source list` show); "": not written.
	SourceStatus string
	// Fleet, when set, shares the state through Redis (fleet.go).
	Fleet *FleetOptions
}

// Stack is a built airlock, not yet serving.
type Stack struct {
	Server  *proxy.Server
	RPC     *rpc.Server      // nil without Options.RPC
	Sources *source.Registry // the vault's credential sources (reference credentials)
	Meter   *usage.Meter     // nil with Options.NoUsage; its store is closed by Server.Shutdown
	// Fleet is the shared state store; nil without Options.Fleet. See
	// JoinFleet and Close.
	Fleet *redisstore.Store

	stop      context.CancelFunc
	fleetDone chan struct{} // closed when the heartbeat has left
}

// Close stops the credential sources (status writer, file watchers) and,
// in fleet mode, waits for the heartbeat to leave (after the ctx given to
// JoinFleet ended) and closes the Redis connections.
func (st *Stack) Close() {
	st.stop()
	st.Sources.Close()
	st.closeFleet()
}

// ErrIncomplete is returned by New when a required part is missing.
var ErrIncomplete = errors.New("stack: Vault, CA, Policy and Log are required")

// New wires the parts into a proxy server (and RPC door).
func New(o Options) (*Stack, error) {
	if o.Vault == nil || o.CA == nil || o.Policy == nil || o.Log == nil {
		return nil, ErrIncomplete
	}
	size := o.CertCache
	if size <= 0 {
		size = DefaultCertCache
	}
	st := &Stack{}
	metrics := proxy.NewMetrics()
	sm, err := source.NewMetrics(metrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("stack: source metrics: %w", err)
	}
	st.Sources = source.NewRegistry(sm, o.Log.Named("source"))
	if err := st.Sources.Load(o.Vault.Snapshot()); err != nil {
		// A definition that does not build answers unavailable; the rest serve.
		o.Log.Error("credential sources loaded with errors", zap.Error(err))
	}
	ctx, stop := context.WithCancel(context.Background())
	st.stop = stop
	if o.SourceStatus != "" {
		go st.Sources.RunStatusWriter(ctx, o.SourceStatus, 10*time.Second)
	}
	cfg := proxy.Config{Vault: o.Vault, Policy: o.Policy, Certs: certs.NewCache(o.CA, size), Log: o.Log,
		UpstreamRoots: o.UpstreamRoots, AuditLog: o.AuditLog, Metrics: metrics, Sources: st.Sources}
	if o.Fleet != nil {
		rs, err := openFleet(context.Background(), o.Fleet, o.Vault, o.Log, &cfg)
		if err != nil {
			st.Close()
			return nil, err
		}
		st.Fleet = rs
	}
	if !o.NoUsage {
		if err := st.meter(o, &cfg); err != nil {
			st.Close()
			return nil, err
		}
	}
	if o.RPC != nil {
		ro := *o.RPC
		cfg.RPC = func(s *proxy.Server) proxy.ConnHandler {
			if ro.Registerer == nil {
				ro.Registerer = s.Metrics().Registry
			}
			if ro.Logger == nil {
				ro.Logger = o.Log
			}
			st.RPC = rpc.New(s, ro)
			return st.RPC.ServeConn
		}
	}
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		st.Close()
		if cfg.MeterStore != nil {
			_ = cfg.MeterStore.Close()
		}
		return nil, err
	}
	st.Server = srv
	return st, nil
}

// JSONLogger is serve's zap logger for --log-format json, writing to w.
func JSONLogger(w zapcore.WriteSyncer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.RFC3339NanoTimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), w, zapcore.InfoLevel))
}

// meter builds the LLM meter: its store (o.UsageFile, or memory), its
// metrics on the proxy's registry, the policy's budgets and prices. The
// server reloads them with every policy (SetPolicy) and closes the store
// at Shutdown.
func (st *Stack) meter(o Options, cfg *proxy.Config) error {
	prices, err := proxy.UsagePrices(o.Policy)
	if err != nil {
		return err
	}
	mt, err := usage.NewMetrics(cfg.Metrics.Registry)
	if err != nil {
		return fmt.Errorf("usage metrics: %w", err)
	}
	var store usage.Store = usage.NewMemStore()
	if o.UsageFile != "" {
		fs, err := usage.OpenFile(o.UsageFile, usage.FileOptions{})
		if err != nil {
			return fmt.Errorf("usage state %s: %w", o.UsageFile, err)
		}
		store, cfg.MeterStore = fs, fs
	}
	if st.Fleet != nil { // budgets shared by the fleet; usage totals stay local
		store = st.Fleet.Usage(store)
	}
	m, err := usage.New(usage.Config{Store: store, Budgets: proxy.UsageBudgets(o.Policy), Prices: prices,
		Metrics: mt, Log: o.Log})
	if err != nil {
		if cfg.MeterStore != nil {
			_ = cfg.MeterStore.Close()
		}
		return err
	}
	m.RefreshGauges()
	st.Meter, cfg.Meter = m, m
	return nil
}
