package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

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
	mux.HandleFunc("GET /v1/status", s.serveStatus) // status.go
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
		h = WithPprof(mux) // status.go
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
	writeJSON(w, http.StatusOK, s.readyDoc()) // detail when the policy on disk is newer (status.go)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
