package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/internal/egress"
	"github.com/airlock/airlock/proxy/state"
)

// The admin listener: /healthz, /readyz, /metrics, /v1/status (what the
// server runs with, never a secret) and, with --pprof, /debug/pprof/.

// AdminOptions configure the admin listener's handler.
type AdminOptions struct {
	// Token is the admin token: every admin endpoint but /healthz, /readyz
	// and /metrics (and the console's own pages under /ui/, which check
	// its login URL and cookie) needs "Authorization: Bearer TOKEN". Empty:
	// those endpoints answer 401 to everyone (fail closed).
	Token string
	// ProtectMetrics makes /metrics need the token too.
	ProtectMetrics bool
	// Pprof serves /debug/pprof/ (behind the token).
	Pprof bool
	// Console, when set, is mounted at /ui/, /v1/approvals and
	// /v1/console/login (package console).
	Console http.Handler
}

// AdminHandler serves the admin listener with no admin token: only
// /healthz, /readyz and /metrics answer; see [Server.AdminHandlerWith].
func (s *Server) AdminHandler() http.Handler { return s.AdminHandlerWith(AdminOptions{}) }

// AdminHandlerWith serves the admin listener (loopback by default, never on
// the proxy port): /healthz, /readyz, /metrics, GET /v1/status, POST
// /v1/seal, the console and pprof when asked for, behind the admin token.
func (s *Server) AdminHandlerWith(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/status", s.serveStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/seal", func(w http.ResponseWriter, _ *http.Request) {
		s.Seal()
		writeJSON(w, http.StatusOK, map[string]string{"status": "sealed"})
	})
	if o.Console != nil {
		for _, p := range []string{"/ui/", "/v1/approvals", "/v1/approvals/", "/v1/console/login"} {
			mux.Handle(p, o.Console)
		}
	}
	var h http.Handler = mux
	if o.Pprof {
		h = WithPprof(mux)
	}
	return &adminAuth{next: h, token: adminTokenDigest(o.Token), protectMetrics: o.ProtectMetrics,
		console: o.Console != nil}
}

// adminAuth requires the admin token on every path but the open ones.
type adminAuth struct {
	next           http.Handler
	token          *[sha256.Size]byte // nil: no token configured, nothing protected is served
	protectMetrics bool
	console        bool
}

func adminTokenDigest(tok string) *[sha256.Size]byte {
	if tok == "" {
		return nil
	}
	d := sha256.Sum256([]byte(tok))
	return &d
}

// open reports whether path is served without the token.
func (a *adminAuth) open(path string) bool {
	switch path {
	case "/healthz", "/readyz":
		return true
	case "/metrics":
		return !a.protectMetrics
	}
	// The console's pages authenticate themselves (one-time login URL,
	// then an HttpOnly SameSite=Strict cookie; its API takes the cookie
	// or this token).
	return a.console && strings.HasPrefix(path, "/ui/")
}

func (a *adminAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.open(r.URL.Path) || a.authorized(r) {
		a.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="airlock admin"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"code": CodeAuthFailed,
		"detail":     "this admin endpoint needs the admin token",
		"suggestion": "send Authorization: Bearer $(airlock admin token)"})
}

// authorized compares the bearer token in constant time (digests, so the
// length does not leak either).
func (a *adminAuth) authorized(r *http.Request) bool {
	if a.token == nil {
		return false
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// Ready reports whether airlock can serve credentials, and why not.
func (s *Server) Ready() (bool, string) {
	if s.Vault() == nil {
		return false, "vault sealed"
	}
	if s.Policy() == nil {
		return false, "no valid policy loaded"
	}
	return true, ""
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if ok, reason := s.Ready(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, s.readyDoc()) // detail when the policy on disk is newer
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// processStart is when this process started serving code (status uptime).
var processStart = time.Now()

// opsState is the operations side of a Server: status, reload bookkeeping,
// the audit file and the parsed upstream proxy. Its zero value is ready.
type opsState struct {
	version  atomic.Pointer[string]
	policyAt atomic.Pointer[policyStamp]
	audit    atomic.Pointer[audit.Log]
	upstream egress.ProxyCache // the parsed egress.upstream_proxy

	vaultSeen atomic.Pointer[fileStamp] // the vault file as an auth miss last saw it (agents.go)

	policyErr, vaultErr atomic.Pointer[ReloadError] // last refused reload of each; nil after a good one
}

// ReloadError is a refused reload: the old version stays in force.
type ReloadError struct {
	File  string    `json:"file"`
	Error string    `json:"error"` // file:line:col: what is wrong, for a policy
	At    time.Time `json:"at"`
}

// noteReloadError remembers a refused reload for /v1/status and doctor.
func (s *Server) noteReloadError(p *atomic.Pointer[ReloadError], file string, err error) {
	p.Store(&ReloadError{File: file, Error: err.Error(), At: time.Now().UTC()})
}

// policyStale says whether the policy file on disk is newer than the
// policy in force (a refused reload, or one not yet noticed).
func (s *Server) policyStale() string {
	p := s.Policy()
	if p == nil || p.File == "" {
		return ""
	}
	fi, err := os.Stat(p.File)
	if err != nil || !fi.ModTime().After(s.policyLoadedAt(p)) {
		return ""
	}
	msg := "the policy in force is older than " + p.File + " on disk"
	if e := s.ops.policyErr.Load(); e != nil {
		msg += ": its reload was refused: " + e.Error
	}
	return msg
}

// readyDoc is the body of a ready /readyz: a detail when the policy file
// on disk is newer than the policy in force.
func (s *Server) readyDoc() map[string]any {
	doc := map[string]any{"status": "ready"}
	if d := s.policyStale(); d != "" {
		doc["detail"] = d
	}
	s.fleetReady(doc)
	return doc
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

// SetAuditTap makes f see every audit line as the audit file would get it
// (the console's live feed), its time in Line.At (Line.Time is formatted
// only when an audit file is configured). f must not block. nil removes
// the tap.
func (s *Server) SetAuditTap(f func(audit.Line)) {
	if f == nil {
		s.auditTap.Store(nil)
		return
	}
	s.auditTap.Store(&f)
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

// fleetReady adds the shared state's health to a ready /readyz body in
// fleet mode (degraded while Redis is unreachable: the concerns run in
// their fail modes, but the replica still serves).
func (s *Server) fleetReady(doc map[string]any) {
	f, ok := s.state.(state.Fleet)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetProbe)
	defer cancel()
	healthy, detail := f.Healthy(ctx)
	doc["state"] = detail
	if !healthy {
		doc["degraded"] = "shared state unreachable: rate limits, budgets, approvals and OAuth2 run in their fail modes"
	}
}

// PolicyStatus describes the policy in force.
type PolicyStatus struct {
	File          string    `json:"file"`
	SHA256        string    `json:"sha256"`
	LoadedAt      time.Time `json:"loaded_at"`
	Rules         int       `json:"rules"`
	Mode          string    `json:"mode"`
	UpstreamProxy string    `json:"upstream_proxy,omitempty"` // without its password
	// LastReloadError is the last refused reload of the policy file (the
	// policy above stays in force); Stale says the file is newer.
	LastReloadError *ReloadError `json:"last_reload_error,omitempty"`
	Stale           string       `json:"stale,omitempty"`
}

// VaultStatus describes the vault in force.
type VaultStatus struct {
	File        string     `json:"file,omitempty"`
	Sealed      bool       `json:"sealed"`
	LoadedAt    *time.Time `json:"loaded_at,omitempty"`
	Credentials int        `json:"credentials"`
	Agents      int        `json:"agents"`
	Expiring    int        `json:"credentials_expiring_7d"`
	// LastReloadError is the last refused reload of the vault file.
	LastReloadError *ReloadError `json:"last_reload_error,omitempty"`
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
		if up, _ := s.viaUpstreamProxy(); up != nil {
			st.Policy.UpstreamProxy = up.Redacted
		}
		st.Policy.LastReloadError, st.Policy.Stale = s.ops.policyErr.Load(), s.policyStale()
	}
	st.Vault.Sealed = true
	if v := s.Vault(); v != nil {
		at := v.LoadedAt().UTC()
		d := v.Snapshot()
		st.Vault = VaultStatus{File: v.Path(), LoadedAt: &at, Credentials: len(d.Credentials), Agents: len(d.Agents),
			Expiring: expiringCount(d, now)}
	}
	st.Vault.LastReloadError = s.ops.vaultErr.Load()
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
