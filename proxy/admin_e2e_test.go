package proxy_test

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// adminTokens caches `airlock admin token` per home.
var adminTokens sync.Map

// adminToken is the home's admin token, as `airlock admin token` prints it.
func (e *env) adminToken() string {
	e.t.Helper()
	if t, ok := adminTokens.Load(e.home); ok {
		return t.(string)
	}
	t := strings.TrimSpace(e.mustRun("", "admin", "token"))
	if !strings.HasPrefix(t, "alk_admin_") {
		e.t.Fatalf("admin token printed %q", t)
	}
	adminTokens.Store(e.home, t)
	return t
}

// admin sends a request to the running serve's admin listener with the
// admin token.
func (e *env) admin(method, path string) (*http.Response, error) {
	return e.adminWith(method, path, "Bearer "+e.adminToken())
}

func (e *env) adminWith(method, path, auth string) (*http.Response, error) {
	req, err := http.NewRequest(method, "http://"+e.adminAddr+path, nil)
	if err != nil {
		return nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return http.DefaultClient.Do(req)
}

func (e *env) adminStatus(method, path, auth string) int {
	e.t.Helper()
	resp, err := e.adminWith(method, path, auth)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminTokenServe: against the real serve, every protected admin
// endpoint answers 401 without the token (and with a wrong one) and 200
// with it; /healthz, /readyz and /metrics stay open unless
// --protect-metrics. Seal last: it ends the vault.
func TestAdminTokenServe(t *testing.T) {
	for _, protect := range []bool{false, true} {
		name := "default"
		if protect {
			name = "protect-metrics"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.writePolicy("version: 1\nrules: []\n")
			if protect {
				e.serve("--pprof", "--protect-metrics")
			} else {
				e.serve("--pprof")
			}
			tok := e.adminToken()
			cases := []struct {
				method, path string
				open         bool
			}{
				{"GET", "/healthz", true},
				{"GET", "/readyz", true},
				{"GET", "/metrics", !protect},
				{"GET", "/v1/status", false},
				{"GET", "/debug/pprof/", false},
				{"GET", "/v1/approvals", false},
				{"POST", "/v1/console/login", false},
				{"POST", "/v1/seal", false},
			}
			for _, tc := range cases {
				for _, bad := range []string{"", "Bearer nope", "Bearer " + tok[:len(tok)-1], "Basic " + tok} {
					want := http.StatusUnauthorized
					if tc.open {
						want = http.StatusOK
					}
					if got := e.adminStatus(tc.method, tc.path, bad); got != want {
						t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, bad, got, want)
					}
				}
				if tc.path == "/v1/seal" && e.adminStatus("GET", "/readyz", "") != 200 {
					t.Fatal("an unauthenticated seal sealed the vault")
				}
				if got := e.adminStatus(tc.method, tc.path, "Bearer "+tok); got != http.StatusOK {
					t.Errorf("%s %s with the token: %d", tc.method, tc.path, got)
				}
			}
			if e.adminStatus("GET", "/readyz", "") != http.StatusServiceUnavailable {
				t.Fatal("seal with the token did not seal")
			}
		})
	}
}

// TestAgentCannotSeal plays the agent under `airlock run`: it reaches the
// admin port directly (NO_PROXY holds 127.0.0.1), tries to seal without a
// token and tries to read the token with the airlock CLI pointed at the
// home it knows; the vault stays unsealed.
func TestAgentCannotSeal(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	e := newEnv(t)
	e.addAgent("bot")
	e.writePolicy("version: 1\nrules: []\n")
	e.serve()
	e.extraEnv = append(e.extraEnv, "AIRLOCK_LISTEN="+e.proxyAddr)
	script := `tok=$(AIRLOCK_HOME="$3" "$1" admin token </dev/null 2>/dev/null)
curl -s -o /dev/null -w '%{http_code} ' -X POST -H "Authorization: Bearer $tok" "http://$2/v1/seal"
curl -s -o /dev/null -w '%{http_code}' -X POST "http://$2/v1/seal"`
	out, errs, code := e.run("", "run", "--agent", "bot", "--", "sh", "-c", script, "sh", airlockBin, e.adminAddr, e.home)
	if code != 0 || strings.TrimSpace(out) != "401 401" {
		t.Fatalf("agent's seal attempts answered %q (exit %d) %s", out, code, errs)
	}
	if e.adminStatus("GET", "/readyz", "") != http.StatusOK {
		t.Fatal("the agent sealed the vault")
	}
}
