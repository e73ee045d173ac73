package examplescheck

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestDashboardAndAlertsAgainstRealPrometheus runs a real `airlock serve`
// (two: one enforcing, one in report mode, both in job "airlock" as a
// fleet would be), drives traffic through them (injected, denied, upstream
// error, metered LLM requests, over-budget refusals, would-deny), scrapes
// them with a real Prometheus every second, and evaluates through its HTTP
// API every PromQL expression of the shipped Grafana dashboard (each must
// return at least one non-NaN sample) and every alert rule (each must
// evaluate; the test says which fire; every metric an alert selects must
// exist, so a misspelt name cannot leave an alert silently quiet).
func TestDashboardAndAlertsAgainstRealPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it): skipping the dashboard and alert evaluation")
	}
	start := time.Now()
	bin := buildAirlock(t)
	up := newFakeAPI(t)

	enf := newHome(t, bin, up)
	enf.cli(apiKey+"\n", "vault", "set", "api/key", "--expires", "3d") // < 7 days: AirlockCredentialExpiring fires
	enf.cli(llmKey+"\n", "vault", "set", "llm/openai")
	bot, cheap := enf.agent("bot"), enf.agent("cheap")
	enf.policy(enforcePolicy, up)
	enf.serve(t)

	rep := newHome(t, bin, up)
	repBot := rep.agent("bot")
	rep.policy(reportPolicy, up)
	rep.serve(t)

	prom := startPrometheus(t, promBin, enf.admin, rep.admin)

	stop := make(chan struct{})
	done := make(chan struct{})
	down := enf.client(t, bot) // 30 upstream errors a second: AirlockUpstreamErrors (> 0.5/s over 5m) fires within seconds
	go func() {                // steady traffic, so every rate() has two differing samples
		defer close(done)
		traffic(t, stop, []trafficCase{
			{enf.client(t, bot), "GET", up.URL + "/api/x", 200},
			{enf.client(t, bot), "GET", up.URL + "/forbidden/x", 403},
			{down, "GET", "https://127.0.0.1:" + enf.downPort + "/x", 502},
			{down, "GET", "https://127.0.0.1:" + enf.downPort + "/y", 502},
			{down, "GET", "https://127.0.0.1:" + enf.downPort + "/z", 502},
			{enf.client(t, bot), "POST", up.URL + "/v1/chat/completions", 200},
			{enf.client(t, cheap), "POST", up.URL + "/v1/chat/completions", 429},
			{rep.client(t, repBot), "GET", up.URL + "/forbidden/x", 200},
		})
	}()
	defer func() { close(stop); <-done }()

	t.Logf("airlock and prometheus up after %v", time.Since(start).Round(100*time.Millisecond))
	dash := dashboardExprs(t)
	alerts := alertRules(t)
	checks := len(dash) + 1
	for _, a := range alerts {
		checks += 1 + len(selectors(a.Expr))
	}
	t.Logf("checking %d dashboard expressions, the $job variable query and %d alert rules (%d checks)", len(dash), len(alerts), checks)

	// The dashboard: every expression returns a non-NaN sample.
	pending := map[string]string{}
	for _, e := range dash {
		pending[e] = ""
	}
	pollUntil(t, 25*time.Second, func() bool {
		for e := range pending {
			if why := prom.hasData(e); why == "" {
				delete(pending, e)
			} else {
				pending[e] = why
			}
		}
		return len(pending) == 0
	})
	t.Logf("dashboard checked after %v", time.Since(start).Round(100*time.Millisecond))
	if len(pending) > 0 && !strings.Contains(scrape(t, enf.admin), "# TYPE airlock_llm_requests_total") {
		t.Errorf("airlock serve exports no airlock_llm_* metrics after metered requests: is the LLM meter wired into serve?")
	}
	for e, why := range pending {
		t.Errorf("dashboard expression returns no data: %s\n  %s", e, why)
	}
	// The $job variable: label_values(airlock_requests_total, job).
	if jobs := prom.labelValues(t, "job", "airlock_requests_total"); !contains(jobs, "airlock") {
		t.Errorf("label_values(airlock_requests_total, job) = %v, want airlock among them", jobs)
	}

	// The alert rules: each evaluates; each fires or stays quiet as
	// expected; each metric it selects exists.
	for _, a := range alerts {
		res, err := prom.query(a.Expr)
		if err != nil {
			t.Errorf("alert %s: %v", a.Alert, err)
			continue
		}
		want, known := alertFires[a.Alert]
		if !known {
			t.Errorf("alert %s: not in alertFires; say whether this test's traffic makes it fire", a.Alert)
		}
		if want && len(res) == 0 { // a 5m rate needs a few seconds of errors
			pollUntil(t, 10*time.Second, func() bool { res, err = prom.query(a.Expr); return err == nil && len(res) > 0 })
		}
		if fires := len(res) > 0; fires != want {
			t.Errorf("alert %s fires=%v, want %v: %s", a.Alert, fires, want, a.Expr)
		}
		for _, sel := range selectors(a.Expr) {
			if why, ok := absentOK[sel]; ok {
				t.Logf("alert %s: selector %s not checked: %s", a.Alert, sel, why)
				continue
			}
			if why := prom.hasSeries(sel); why != "" {
				t.Errorf("alert %s selects %s, which has no series: %s", a.Alert, sel, why)
			}
		}
	}
	prom.rulesHealthy(t, len(alerts))
	for _, h := range []*home{enf, rep} { // nothing scraped or logged holds a key
		noSecrets(t, "/metrics", scrape(t, h.admin))
		noSecrets(t, "airlock serve log", h.logs.String())
	}
	t.Logf("done in %v", time.Since(start).Round(100*time.Millisecond))
}

const (
	apiKey = "sk-api-5e1f0c9a7d3b"
	llmKey = "sk-llm-8b2d4f6a1c0e"
)

func noSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, k := range []string{apiKey, llmKey} {
		for _, form := range []string{k, base64.StdEncoding.EncodeToString([]byte(k)), url.QueryEscape(k), hex.EncodeToString([]byte(k))} {
			if strings.Contains(text, form) {
				t.Errorf("%s contains a form of a stored key", where)
			}
		}
	}
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// alertFires says which alerts the test's traffic makes fire: a credential
// expiring in 3 days, 30 upstream errors a second, one replica in job
// airlock-fleet. The others are quiet when airlock is healthy.
var alertFires = map[string]bool{
	"AirlockDown":                false,
	"AirlockPolicyReloadFailing": false,
	"AirlockVaultReloadFailing":  false,
	"AirlockVaultSealed":         false,
	"AirlockDenialSpike":         false, // needs an hour of history (offset 5m)
	"AirlockCredentialExpiring":  true,
	"AirlockUpstreamErrors":      true,
	"AirlockAuditLinesDropped":   false,
	"AirlockStateStoreErrors":    false,
	"AirlockFleetReplicaDown":    true,
}

// absentOK lists selectors of alerts allowed to have no series here, and why.
var absentOK = map[string]string{
	"airlock_state_errors_total": "exported by serve --state redis:// (fleet mode, not run here) only once a state operation has failed",
}

const enforcePolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: api
    host: "{{UP}}"
    paths: ["/api/**"]
    credential: api/key
  - name: blocked
    host: "{{UP}}"
    paths: ["/forbidden/**"]
    action: deny
  - name: llm
    host: "{{UP}}"
    paths: ["/v1/**"]
    credential: llm/openai
    usage: openai
  - name: down
    host: "127.0.0.1:{{DOWN}}"
    credential: api/key
budgets:
  - {name: team-daily, scope: {agent: bot}, limit: {tokens: 100000000}, window: day, warn_at: 0.00001}
  - {name: cheap-daily, scope: {agent: cheap}, limit: {tokens: 10}, window: day}
`

const reportPolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
  mode: report
rules:
  - name: blocked
    host: "{{UP}}"
    paths: ["/forbidden/**"]
    action: deny
`

// traffic sends each case every 100 ms until stop, checking the status.
func traffic(t *testing.T, stop <-chan struct{}, cases []trafficCase) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	bad := map[int]bool{}
	for {
		for i, c := range cases {
			if code := c.do(); code != c.want && !bad[i] {
				bad[i] = true
				t.Errorf("%s %s: status %d, want %d", c.method, c.url, code, c.want)
			}
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

type trafficCase struct {
	c      *http.Client
	method string
	url    string
	want   int
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`

func (c trafficCase) do() int {
	var body *strings.Reader
	if c.method == "POST" {
		body = strings.NewReader(chatBody)
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(c.method, c.url, body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// Grafana variables, substituted as Grafana would for a 1 s scrape
// interval ($__rate_interval is at least four scrape intervals).
var grafanaVars = strings.NewReplacer(
	"${job}", "airlock", "$job", "airlock",
	"$__rate_interval", "10s", "$__interval", "1s", "$__range", "1m",
)

// dashboardExprs returns every target expr of the shipped dashboard, with
// the Grafana variables substituted.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "examples/grafana/airlock-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []string
	var walk func(panels any)
	walk = func(panels any) {
		ps, _ := panels.([]any)
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			ts, _ := pm["targets"].([]any)
			for _, tg := range ts {
				if e, _ := tg.(map[string]any)["expr"].(string); e != "" {
					out = append(out, grafanaVars.Replace(e))
				}
			}
			walk(pm["panels"]) // collapsed rows
		}
	}
	walk(d["panels"])
	if len(out) == 0 {
		t.Fatal("no expressions found in the dashboard")
	}
	for _, e := range out {
		if strings.Contains(e, "$") {
			t.Errorf("unsubstituted Grafana variable in %s", e)
		}
	}
	return out
}

type alertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "examples/prometheus/alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("no alert rules found")
	}
	return out
}

var (
	reGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reOffset   = regexp.MustCompile(`\boffset\s+\w+`)
	reSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?`)
	keywords   = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "inf": true, "nan": true}
)

// selectors returns the vector selectors of a PromQL expression (metric
// name and matchers), without ranges, offsets, functions or aggregations.
func selectors(expr string) []string {
	s := reGrouping.ReplaceAllString(expr, " ")
	s = reOffset.ReplaceAllString(reRange.ReplaceAllString(s, " "), " ")
	seen := map[string]bool{}
	var out []string
	for _, m := range reSelector.FindAllStringSubmatch(s, -1) {
		name, matchers, call := m[1], m[2], m[3]
		if call != "" && matchers == "" || keywords[strings.ToLower(name)] {
			continue // a function or aggregation, or an operator
		}
		sel := name + matchers
		if !seen[sel] {
			seen[sel] = true
			out = append(out, sel)
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func pollUntil(t *testing.T, d time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !fn() && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
}

// TestSelectors: the selector extraction behind the alert check finds the
// metrics an expression reads, and nothing else.
func TestSelectors(t *testing.T) {
	cases := map[string]struct {
		expr string
		want []string
	}{
		"comparison":  {`up{job=~"airlock.*"} == 0`, []string{`up{job=~"airlock.*"}`}},
		"aggregation": {`max by (instance) (airlock_vault_sealed) == 1`, []string{"airlock_vault_sealed"}},
		"range and matchers": {`sum by (instance) (rate(airlock_requests_total{code="UPSTREAM_ERROR"}[5m])) > 0.5`,
			[]string{`airlock_requests_total{code="UPSTREAM_ERROR"}`}},
		"and, offset": {`sum by (a) (rate(x_total[5m])) > 1 and sum by (a) (rate(x_total[1h] offset 5m))`, []string{"x_total"}},
		"nested":      {`count by (job) (up{job="airlock-fleet"} == 1) < 2`, []string{`up{job="airlock-fleet"}`}},
		"functions":   {`time() - max(airlock_config_last_reload_success_timestamp_seconds)`, []string{"airlock_config_last_reload_success_timestamp_seconds"}},
		"histogram": {`histogram_quantile(0.5, sum by (le, rule) (rate(airlock_upstream_duration_seconds_bucket[1m])))`,
			[]string{"airlock_upstream_duration_seconds_bucket"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := selectors(tc.expr); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("selectors(%s) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}
