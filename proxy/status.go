package proxy

import (
	"context"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/state"
)

// processStart is when this process started serving code (status uptime).
var processStart = time.Now()

// opsState is the operations side of a Server: status, reload bookkeeping,
// the audit file and the parsed upstream proxy. Its zero value is ready.
type opsState struct {
	version  atomic.Pointer[string]
	policyAt atomic.Pointer[policyStamp]
	audit    atomic.Pointer[audit.Log]
	upstream atomic.Pointer[upstreamCache]
}

// policyStamp remembers when a policy was swapped in.
type policyStamp struct {
	p  *policy.Policy
	at time.Time
}

// SetVersion sets the version /v1/status reports.
func (s *Server) SetVersion(v string) { s.ops.version.Store(&v) }

// SetAuditLog makes every audited request also go to a (hash-chained
// file). Call it before Serve; Close the log after Shutdown.
func (s *Server) SetAuditLog(a *audit.Log) {
	if a != nil {
		a.OnDrop(s.metrics.AuditDropped.Inc)
	}
	s.ops.audit.Store(a)
}

// swapPolicy installs p and remembers when.
func (s *Server) swapPolicy(p *policy.Policy, at time.Time) {
	s.SetPolicy(p)
	s.ops.policyAt.Store(&policyStamp{p: p, at: at})
}

// policyLoadedAt is when p was swapped in (process start for the policy
// given to New).
func (s *Server) policyLoadedAt(p *policy.Policy) time.Time {
	if st := s.ops.policyAt.Load(); st != nil && st.p == p {
		return st.at
	}
	return processStart
}

// Status is the document of GET /v1/status: names, counts and times, never
// a credential value or a token.
type Status struct {
	Version       string       `json:"version"`
	StartedAt     time.Time    `json:"started_at"`
	UptimeSeconds float64      `json:"uptime_seconds"`
	Ready         bool         `json:"ready"`
	Reason        string       `json:"reason,omitempty"`
	Policy        PolicyStatus `json:"policy"`
	Vault         VaultStatus  `json:"vault"`
	AuditLog      *AuditStatus `json:"audit_log,omitempty"`
	Fleet         *FleetStatus `json:"fleet,omitempty"`
}

// FleetStatus is the fleet as the shared state store sees it (`serve
// --state`): this replica, the live ones, and the store's health.
type FleetStatus struct {
	Replica  string         `json:"replica"`
	Replicas []state.Member `json:"replicas"`
	Error    string         `json:"error,omitempty"` // listing failed
	State    any            `json:"state"`           // health: address (no password), last error, fail modes
	StateOK  bool           `json:"state_ok"`
}

// fleetProbe bounds the Redis calls of /v1/status and /readyz.
const fleetProbe = time.Second

// fleetStatus reports the fleet; nil outside fleet mode.
func (s *Server) fleetStatus() *FleetStatus {
	f, ok := s.state.(state.Fleet)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetProbe)
	defer cancel()
	fs := &FleetStatus{Replica: f.ReplicaID()}
	fs.StateOK, fs.State = f.Healthy(ctx)
	members, err := f.Members(ctx)
	if err != nil {
		fs.Error = err.Error()
	}
	fs.Replicas = append([]state.Member{}, members...)
	return fs
}

// readyDetail is the body of a ready /readyz: in fleet mode with the
// shared state's health (degraded while Redis is unreachable: the
// concerns run in their fail modes, but the replica still serves).
func (s *Server) readyDetail() map[string]any {
	doc := map[string]any{"status": "ready"}
	f, ok := s.state.(state.Fleet)
	if !ok {
		return doc
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetProbe)
	defer cancel()
	healthy, detail := f.Healthy(ctx)
	doc["state"] = detail
	if !healthy {
		doc["degraded"] = "shared state unreachable: rate limits, budgets, approvals and OAuth2 run in their fail modes"
	}
	return doc
}

// PolicyStatus describes the policy in force.
type PolicyStatus struct {
	File          string    `json:"file"`
	SHA256        string    `json:"sha256"`
	LoadedAt      time.Time `json:"loaded_at"`
	Rules         int       `json:"rules"`
	Mode          string    `json:"mode"`
	UpstreamProxy string    `json:"upstream_proxy,omitempty"` // without its password
}

// VaultStatus describes the vault in force.
type VaultStatus struct {
	File        string     `json:"file,omitempty"`
	Sealed      bool       `json:"sealed"`
	LoadedAt    *time.Time `json:"loaded_at,omitempty"`
	Credentials int        `json:"credentials"`
	Agents      int        `json:"agents"`
	Expiring    int        `json:"credentials_expiring_7d"`
}

// AuditStatus describes the audit file.
type AuditStatus struct {
	File    string `json:"file"`
	Dropped int64  `json:"dropped"`
}

// Status reports what the server runs with.
func (s *Server) Status() Status {
	now := time.Now()
	st := Status{StartedAt: processStart.UTC(), UptimeSeconds: now.Sub(processStart).Seconds()}
	if v := s.ops.version.Load(); v != nil {
		st.Version = *v
	}
	st.Ready, st.Reason = s.Ready()
	if p := s.Policy(); p != nil {
		st.Policy = PolicyStatus{File: p.File, SHA256: p.Hash, LoadedAt: s.policyLoadedAt(p).UTC(),
			Rules: len(p.Rules), Mode: orString(p.Egress.Mode, "enforce")}
		if up := s.upstreamProxy(); up != nil {
			st.Policy.UpstreamProxy = up.Redacted
		}
	}
	st.Vault.Sealed = true
	if v := s.Vault(); v != nil {
		at := v.LoadedAt().UTC()
		d := v.Snapshot()
		st.Vault = VaultStatus{File: v.Path(), LoadedAt: &at, Credentials: len(d.Credentials), Agents: len(d.Agents),
			Expiring: expiringCount(d, now)}
	}
	if a := s.ops.audit.Load(); a != nil {
		st.AuditLog = &AuditStatus{File: a.Path(), Dropped: a.Dropped()}
	}
	st.Fleet = s.fleetStatus()
	return st
}

func (s *Server) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.Status())
}

// WithPprof adds the /debug/pprof/ handlers in front of an admin handler
// (`airlock serve --pprof`; off by default: profiles reveal internals).
func WithPprof(admin http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", admin)
	return mux
}
