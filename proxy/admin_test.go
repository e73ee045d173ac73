package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestAdminToken: every endpoint but /healthz, /readyz and /metrics needs
// the admin token; a wrong token, another scheme or no token gets 401 and
// changes nothing (the vault stays unsealed).
func TestAdminToken(t *testing.T) {
	const tok = "alk_admin_0123456789abcdef0123456789"
	s, _, _ := inprocServer(t, "k", inprocSecret, "tok", "version: 1\nrules: []\n", Config{Log: zap.NewNop()})
	cases := []struct {
		name, method, path string
		protectMetrics     bool
		open               bool
	}{ // seal last: it ends the vault
		{"healthz", "GET", "/healthz", false, true},
		{"readyz", "GET", "/readyz", false, true},
		{"metrics", "GET", "/metrics", false, true},
		{"metrics protected", "GET", "/metrics", true, false},
		{"status", "GET", "/v1/status", false, false},
		{"pprof", "GET", "/debug/pprof/", false, false},
		{"seal", "POST", "/v1/seal", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := s.AdminHandlerWith(AdminOptions{Token: tok, ProtectMetrics: tc.protectMetrics, Pprof: true})
			for _, auth := range []string{"", "Bearer wrong", "Basic " + tok, "Bearer " + tok + "x", "Bearer " + tok[:len(tok)-1]} {
				w := httptest.NewRecorder()
				r := httptest.NewRequest(tc.method, tc.path, nil)
				if auth != "" {
					r.Header.Set("Authorization", auth)
				}
				h.ServeHTTP(w, r)
				if tc.open && w.Code != http.StatusOK || !tc.open && w.Code != http.StatusUnauthorized {
					t.Fatalf("auth %q: %d", auth, w.Code)
				}
				if s.Vault() == nil {
					t.Fatalf("auth %q sealed the vault", auth)
				}
			}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("with the token: %d %s", w.Code, w.Body)
			}
		})
	}
	if s.Vault() != nil {
		t.Fatal("seal with the token did not seal")
	}
	// No token configured: protected endpoints refuse everyone.
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/v1/seal", nil)
	r.Header.Set("Authorization", "Bearer ")
	s.AdminHandler().ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("no token configured: %d", w.Code)
	}
}

// FuzzAdminAuth: an Authorization header is accepted exactly when it is
// "Bearer" (any case) and the token, never for anything shorter, longer or
// different, and never panics.
func FuzzAdminAuth(f *testing.F) {
	const tok = "alk_admin_fuzz0123456789abcdef"
	for _, s := range []string{"", "Bearer " + tok, "bearer " + tok, "Bearer  " + tok + " ", "Bearer " + tok[:5], "Basic " + tok, "Bearer", "Bearer \x00"} {
		f.Add(s)
	}
	a := &adminAuth{token: adminTokenDigest(tok)}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		r.Header["Authorization"] = []string{h}
		got := a.authorized(r)
		want := len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && strings.TrimSpace(h[7:]) == tok
		if got != want {
			t.Fatalf("authorized(%q) = %v, want %v", h, got, want)
		}
	})
}
