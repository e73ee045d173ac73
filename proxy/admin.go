package proxy

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener (loopback by default, never on the
// proxy port): /healthz, /readyz, /metrics and POST /v1/seal.
func (s *Server) AdminHandler() http.Handler {
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
	return mux
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
