package proxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlock/airlock/proxy"
)

// adminGet fetches a path from the running serve's admin listener.
func (e *env) adminGet(path string) (int, string) {
	e.t.Helper()
	resp, err := e.admin("GET", path) // with the admin token (admin_e2e_test.go)
	if err != nil {
		e.t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// series is one parsed sample line of the Prometheus text format.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func parseMetrics(t *testing.T, text string) []series {
	t.Helper()
	var out []series
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable metrics line %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s := series{name: m[1], labels: map[string]string{}, value: v}
		for _, lp := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[lp[1]] = lp[2]
		}
		out = append(out, s)
	}
	return out
}

// metric sums the samples of name whose labels include want; found is
// false when there is none.
func (e *env) metric(name string, want map[string]string) (sum float64, found bool) {
	_, text := e.adminGet("/metrics")
	for _, s := range parseMetrics(e.t, text) {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && s.labels[k] == v
		}
		if ok {
			sum, found = sum+s.value, true
		}
	}
	return sum, found
}

// waitMetric polls until name{want} reaches at least min.
func (e *env) waitMetric(name string, want map[string]string, min float64) {
	e.t.Helper()
	waitFor(e.t, 2*time.Second, func() error {
		if v, _ := e.metric(name, want); v < min {
			return fmt.Errorf("%s%v = %v, want >= %v", name, want, v, min)
		}
		return nil
	})
}

func TestMetricsAfterRealRequests(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	for _, p := range []string{"/bearer/a", "/bearer/b", "/forbidden/x"} {
		getJSON(t, c, up.URL+p, nil)
	}
	resp, _, _ := rawConnect(t, e.proxyAddr, up.hostPort(), "mallory:"+strings.Repeat("0", 64))
	resp.Body.Close()
	cases := map[string]struct {
		name   string
		labels map[string]string
		min    float64
	}{
		"injected requests":    {"airlock_requests_total", map[string]string{"agent": "bot", "rule": "bearer", "decision": "inject", "code": "OK"}, 2},
		"credential uses":      {"airlock_credential_uses_total", map[string]string{"credential": "test/bearer", "agent": "bot", "rule": "bearer"}, 2},
		"denied by rule":       {"airlock_requests_total", map[string]string{"agent": "bot", "rule": "blocked", "decision": "deny", "code": "ACCESS_DENIED"}, 1},
		"denials by reason":    {"airlock_denials_total", map[string]string{"agent": "bot", "reason": "ACCESS_DENIED"}, 1},
		"unknown agent":        {"airlock_denials_total", map[string]string{"agent": "unknown", "reason": "AUTH_FAILED"}, 1},
		"upstream latency":     {"airlock_upstream_duration_seconds_count", map[string]string{"rule": "bearer"}, 2},
		"cert cache":           {"airlock_cert_cache_total", nil, 1},
		"config loaded at":     {"airlock_config_last_reload_success_timestamp_seconds", nil, float64(time.Now().Add(-time.Hour).Unix())},
		"go collector present": {"go_goroutines", nil, 1},
		// serve paces the GC for its small heap (cmd/internal/gctune):
		// GOGC above the default 100 while nothing sets GOGC/GOMEMLIMIT.
		"gc paced for a small heap": {"go_gc_gogc_percent", nil, 150},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e.waitMetric(tc.name, tc.labels, tc.min)
		})
	}
	for _, zero := range []string{"airlock_policy_reloads_total", "airlock_vault_reloads_total"} {
		if v, found := e.metric(zero, map[string]string{"result": "error"}); !found || v != 0 {
			t.Errorf("%s{result=error} = %v (found %v), want 0 and exported", zero, v, found)
		}
	}
	if v, found := e.metric("airlock_vault_sealed", nil); !found || v != 0 {
		t.Errorf("airlock_vault_sealed = %v (found %v)", v, found)
	}
	_, text := e.adminGet("/metrics")
	assertNoSecrets(t, "metrics", text)
	if strings.Contains(text, "mallory") {
		t.Errorf("an unauthenticated agent name became a label value")
	}
}

func TestStatusAndPprof(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	code, body := e.adminGet("/v1/status")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var st struct {
		Version       string  `json:"version"`
		UptimeSeconds float64 `json:"uptime_seconds"`
		Ready         bool    `json:"ready"`
		Policy        struct {
			File, SHA256, Mode string
			LoadedAt           time.Time `json:"loaded_at"`
			Rules              int
		}
		Vault struct {
			LoadedAt    *time.Time `json:"loaded_at"`
			Credentials int
			Agents      int
		}
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status JSON: %v: %s", err, body)
	}
	if st.Version == "" || !st.Ready || st.Policy.Rules < 10 || len(st.Policy.SHA256) != 64 || st.Policy.Mode != "enforce" ||
		!strings.HasSuffix(st.Policy.File, "policy.yaml") || st.Policy.LoadedAt.IsZero() || st.Vault.LoadedAt == nil ||
		st.Vault.Credentials != len(secrets) || st.Vault.Agents != 1 {
		t.Errorf("status: %s", body)
	}
	assertNoSecrets(t, "status", body)
	if code, _ := e.adminGet("/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof served without --pprof: %d", code)
	}
	e.stop()

	e.serve("--pprof")
	if code, _ := e.adminGet("/debug/pprof/"); code != 200 {
		t.Errorf("pprof with --pprof: %d", code)
	}
}

func TestPolicyHotReload(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	base := strings.NewReplacer("{{UP}}", up.hostPort(), "{{DOWN}}", e.downPort).Replace(injectPolicy)
	if code, _, _, _ := getJSON(t, c, up.URL+"/late/x", nil); code != 403 {
		t.Fatalf("before the edit: %d, want 403", code)
	}
	e.writePolicy(base + "  - name: late\n    host: \"" + up.hostPort() + "\"\n    paths: [\"/late/**\"]\n    credential: test/bearer\n")
	want := digest("Bearer " + secrets["test/bearer"])
	waitFor(t, 2*time.Second, func() error {
		if code, seen, _, body := getJSON(t, c, up.URL+"/late/x", nil); code != 200 || seen.Auth != want {
			return fmt.Errorf("new rule not in force: %d %s", code, body)
		}
		return nil
	})
	e.waitMetric("airlock_policy_reloads_total", map[string]string{"result": "success"}, 1)

	e.writePolicy(base + "  - name: broken\n    host: \"" + up.hostPort() + "\"\n    acton: deny\n")
	e.waitMetric("airlock_policy_reloads_total", map[string]string{"result": "error"}, 1)
	if code, seen, _, body := getJSON(t, c, up.URL+"/late/x", nil); code != 200 || seen.Auth != want {
		t.Errorf("after an invalid edit the old rule must stay in force: %d %s", code, body)
	}
	if code, body := e.adminGet("/readyz"); code != 200 {
		t.Errorf("readyz after a refused reload: %d %s", code, body)
	}
	if !regexp.MustCompile(`policy\.yaml:\d+:\d+`).MatchString(e.logs.String()) {
		t.Errorf("refused reload not logged with file:line:col:\n%s", e.logs.String())
	}
}

func TestVaultSetDuringServe(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	const fresh = "sk-rotated-5e6f7a8b9c0d"
	e.setSecret("test/bearer", fresh)
	waitFor(t, 2*time.Second, func() error {
		if _, seen, _, body := getJSON(t, c, up.URL+"/bearer/x", nil); seen.Auth != digest("Bearer "+fresh) {
			return fmt.Errorf("new value not injected yet: %s", body)
		}
		return nil
	})
	e.waitMetric("airlock_vault_reloads_total", map[string]string{"result": "success"}, 1)
	if strings.Contains(e.logs.String(), fresh) {
		t.Errorf("the new secret appears in the logs")
	}
}

func TestAuditLogChainVerify(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: bearer\n    host: \"" +
		up.hostPort() + "\"\n    paths: [\"/bearer/**\"]\n    credential: test/bearer\n")
	logFile := filepath.Join(t.TempDir(), "audit.log")
	e.serve("--audit-log", logFile)
	c := e.client(agent)
	for i := range 5 {
		getJSON(t, c, fmt.Sprintf("%s/bearer/%d?q=secret-looking", up.URL, i), nil)
	}
	getJSON(t, c, up.URL+"/nowhere", nil)
	var lines []string
	waitFor(t, 2*time.Second, func() error {
		b, _ := os.ReadFile(logFile)
		lines = strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) < 6 {
			return fmt.Errorf("%d audit lines", len(lines))
		}
		return nil
	})
	all := strings.Join(lines, "")
	assertNoSecrets(t, "audit log", all)
	if strings.Contains(all, "secret-looking") || !strings.Contains(all, `"decision":"deny"`) {
		t.Errorf("audit log: query string recorded or deny missing:\n%s", all)
	}
	out, errs, code := e.run("", "audit", "verify", logFile)
	if code != 0 || strings.TrimSpace(out) != "ok 6 lines" {
		t.Fatalf("verify untouched: exit %d, %q %q", code, out, errs)
	}
	cases := map[string]struct {
		edit     func([]string) []string
		wantLine int
	}{
		"edited":  {func(l []string) []string { l[2] = strings.Replace(l[2], `"status":200`, `"status":201`, 1); return l }, 3},
		"deleted": {func(l []string) []string { return append(l[:3:3], l[4:]...) }, 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "audit.log")
			os.WriteFile(bad, []byte(strings.Join(tc.edit(append([]string(nil), lines...)), "")), 0o600)
			_, errs, code := e.run("", "audit", "verify", bad)
			if code != 1 || !strings.Contains(errs, bad+":"+strconv.Itoa(tc.wantLine)+":") {
				t.Errorf("exit %d, stderr %q; want exit 1 naming line %d", code, errs, tc.wantLine)
			}
		})
	}
}

func TestReportMode(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	other := newUpstream(t, nil) // no rule names it
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  mode: report\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n" +
		"  - name: bearer\n    host: \"" + up.hostPort() + "\"\n    paths: [\"/bearer/**\"]\n    credential: test/bearer\n" +
		"  - name: blocked\n    host: \"" + up.hostPort() + "\"\n    paths: [\"/admin/**\"]\n    action: deny\n")
	e.serve()
	c := e.client(agent)
	for name, p := range map[string]string{"unmatched path": "/nowhere", "deny rule": "/admin/x"} {
		t.Run(name, func(t *testing.T) {
			code, seen, _, body := getJSON(t, c, up.URL+p, nil)
			if code != 200 || seen.Path != p || seen.Auth != "" {
				t.Errorf("report mode: %d, upstream saw %q with auth %q: %s", code, seen.Path, seen.Auth, body)
			}
		})
	}
	if code, seen, _, _ := getJSON(t, c, up.URL+"/bearer/x", nil); code != 200 || seen.Auth != digest("Bearer "+secrets["test/bearer"]) {
		t.Errorf("allowed request in report mode: %d, auth %q", code, seen.Auth)
	}
	t.Run("unlisted host is tunnelled", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(other.Certificate())
		tc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(e.proxyURL(agent)), TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := tc.Get(other.URL + "/anything")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !resp.TLS.PeerCertificates[0].Equal(other.Certificate()) {
			t.Errorf("status %d; want the upstream's own certificate through a tunnel", resp.StatusCode)
		}
	})
	e.waitMetric("airlock_requests_total", map[string]string{"decision": "would_deny", "code": "ACCESS_DENIED"}, 3)
	if v, _ := e.metric("airlock_denials_total", nil); v != 0 {
		t.Errorf("report mode counted %v denials", v)
	}
	if !strings.Contains(e.logs.String(), `"action":"would_deny"`) {
		t.Errorf("no would_deny audit line")
	}
}

func TestUpstreamProxyChaining(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	corp := proxy.NewTestConnectProxy(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("corp:hunter2")))
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	_, port, _ := net.SplitHostPort(up.hostPort())
	e.writePolicy("version: 1\negress:\n  upstream_proxy: \"http://corp:hunter2@" + corp.Addr() + "\"\n" +
		"  allow_networks: [\"127.0.0.0/8\"]\nrules:\n" +
		"  - name: bearer\n    host: \"127.0.0.1:" + port + "\"\n    credential: test/bearer\n")
	e.serve()
	code, seen, _, body := getJSON(t, e.client(agent), up.URL+"/v1/x", nil)
	if code != 200 || seen.Auth != digest("Bearer "+secrets["test/bearer"]) || seen.ProxyAuth != "" {
		t.Fatalf("through the corporate proxy: %d %s", code, body)
	}
	if targets := corp.Seen(); len(targets) == 0 || targets[0] != "127.0.0.1:"+port {
		t.Errorf("CONNECT targets %v, want the checked address 127.0.0.1:%s", targets, port)
	}
	if strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("the upstream proxy password appears in the logs")
	}
	if _, st := e.adminGet("/v1/status"); strings.Contains(st, "hunter2") {
		t.Errorf("the upstream proxy password appears in /v1/status")
	}
}

func TestExamplePolicies(t *testing.T) {
	t.Parallel() // own home, own ports
	files, _ := filepath.Glob("../examples/policies/*.yaml")
	if len(files) < 6 {
		t.Fatalf("examples/policies has %d files", len(files))
	}
	e := newEnv(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, errs, code := e.run("", "policy", "check", f); code != 0 {
				t.Errorf("policy check %s: exit %d\n%s%s", f, code, out, errs)
			}
		})
	}
}

// promNames extracts metric names from PromQL text.
var promName = regexp.MustCompile(`\b(airlock_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)

// collectExprs walks a decoded JSON document for the "expr" of targets.
func collectExprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" {
				*out = append(*out, s)
			}
			collectExprs(val, out)
		}
	case []any:
		for _, val := range x {
			collectExprs(val, out)
		}
	}
}

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	c := e.client(agent)
	getJSON(t, c, up.URL+"/bearer/x", nil)
	getJSON(t, c, up.URL+"/forbidden/x", nil)
	e.waitMetric("airlock_credential_uses_total", nil, 1)
	_, text := e.adminGet("/metrics")
	// The LLM panels: metrics of a serve with a budget after one metered request.
	ue, oai, _, uagent := startUsageEnv(t, "  - {name: daily, scope: {rule: openai}, limit: {tokens: 100000}, window: day}", nil)
	post(t, ue.client(uagent), oai.URL+"/v1/chat/completions", chatJSONBody)
	ue.waitMetric("airlock_llm_requests_total", map[string]string{"outcome": "ok"}, 1)
	_, utext := ue.adminGet("/metrics")
	text += "\n" + utext
	exported := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && (f[1] == "TYPE") {
			exported[f[2]] = true
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if f[3] == "histogram" {
					exported[f[2]+suffix] = true
				}
			}
		}
	}
	var dash any
	b, err := os.ReadFile("../examples/grafana/airlock-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	collectExprs(dash, &exprs)
	alerts, err := os.ReadFile("../examples/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(alerts, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !strings.Contains(r.Expr, "up{") { // Prometheus' own scrape health
				exprs = append(exprs, r.Expr)
			}
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("found only %d PromQL expressions", len(exprs))
	}
	// Exported only by `serve --state redis://…` (counted there by
	// proxy/state/redisstore, whose tests check the counter).
	fleetOnly := map[string]bool{"airlock_state_errors_total": true}
	for _, expr := range exprs {
		names := promName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("expression names no airlock metric: %s", expr)
		}
		for _, n := range names {
			if !exported[n] && !fleetOnly[n] {
				t.Errorf("%s is not exported by airlock serve (in %s)", n, expr)
			}
		}
	}
}
