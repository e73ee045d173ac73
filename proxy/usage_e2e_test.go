package proxy_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of LLM metering and budgets through the real `airlock
// serve` binary, with loopback TLS fakes of OpenAI and Anthropic
// (llmfake_test.go).

const usagePolicy = `version: 1
egress:
  allow_networks: ["127.0.0.0/8", "::1/128"]
rules:
  - name: openai
    host: "{{OAI}}"
    paths: ["/v1/**"]
    credential: llm/openai
    usage: openai
  - name: anthropic
    host: "{{ANT}}"
    paths: ["/v1/**"]
    credential: llm/anthropic
    usage: anthropic
    inject: {type: custom, header: x-api-key, format: "{secret}"}
  - name: down
    host: "127.0.0.1:{{DOWN}}"
    credential: llm/openai
    usage: openai
budgets:
{{BUDGETS}}
`

const (
	usageOpenAIKey    = "sk-proj-usage-e2e-0123456789abcdefghij"
	usageAnthropicKey = "sk-ant-api03-usage-e2e-0123456789abcdef"
)

// startUsageEnv runs airlock serve with usagePolicy and budgets (YAML list
// items) against the two fakes.
func startUsageEnv(t *testing.T, budgets string, tune func(*llmFake)) (*env, *llmFake, *llmFake, *url.URL) {
	t.Helper()
	oai, ant := newOpenAIFake(t, tune), newAnthropicFake(t)
	e := newEnv(t)
	up := &upstream{Server: oai.Server}
	e.upCAFile = up.caFile(t) // httptest servers share one certificate
	e.setSecret("llm/openai", usageOpenAIKey)
	e.setSecret("llm/anthropic", usageAnthropicKey)
	agent := e.addAgent("bot")
	if budgets == "" {
		budgets = "  []"
	}
	e.writePolicy(strings.NewReplacer("{{OAI}}", oai.hostPort(), "{{ANT}}", ant.hostPort(), "{{BUDGETS}}", budgets, "{{DOWN}}", closedPort(t)).Replace(usagePolicy))
	e.serveWaited()
	t.Cleanup(func() { // the logs, the metrics and the state file hold no form of a key
		state, _ := os.ReadFile(filepath.Join(e.home, "usage.json"))
		e.keepMetrics() // serve may still run (stopped by the cleanup registered before this one)
		m, _ := lastMetrics.LoadAndDelete(e)
		metrics, _ := m.(string)
		if metrics == "" {
			t.Errorf("no /metrics kept to check for secrets")
		}
		for where, text := range map[string]string{"airlock logs": e.logs.String(), "/metrics": metrics, "usage.json": string(state)} {
			for _, k := range []string{usageOpenAIKey, usageAnthropicKey} {
				for _, form := range []string{k, base64.StdEncoding.EncodeToString([]byte(k)), url.QueryEscape(k), hex.EncodeToString([]byte(k))} {
					if strings.Contains(text, form) {
						t.Errorf("%s contain an API key", where)
					}
				}
			}
		}
	})
	return e, oai, ant, agent
}

// lastMetrics keeps each env's /metrics from just before serve stopped
// (*env → string), for the secret check at the end of a test.
var lastMetrics sync.Map

// keepMetrics appends the running serve's /metrics to lastMetrics.
func (e *env) keepMetrics() {
	resp, err := http.Get("http://" + e.adminAddr + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	old, _ := lastMetrics.Load(e)
	s, _ := old.(string)
	lastMetrics.Store(e, s+string(b))
}

// serveWaited starts serve; the test's cleanup stops it and waits for its
// exit (its last save of usage.json) before the home is removed.
func (e *env) serveWaited() {
	e.t.Helper()
	e.serve()
	p := e.cmd.Process
	e.t.Cleanup(func() {
		e.keepMetrics()
		_ = p.Signal(os.Interrupt)
		waitExit(e.t, p)
	})
}

func waitExit(t *testing.T, p *os.Process) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		if err := p.Signal(syscall.Signal(0)); err != nil && errors.Is(err, os.ErrProcessDone) {
			return nil
		}
		return errors.New("airlock serve still running")
	})
}

// stopAndWait stops serve and waits until the process has exited (its
// usage file is then saved).
func (e *env) stopAndWait() {
	e.t.Helper()
	p := e.cmd.Process
	e.keepMetrics()
	e.stop()
	waitExit(e.t, p)
}

const (
	chatJSONBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}`
	chatSSEBody  = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`
	msgSSEBody   = `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Bonjour"}]}`
)

// TestUsageE2ECountsEqualProvider: every figure airlock counts (tokens of
// each kind, cost, requests; /metrics, the audit line, `airlock usage
// --json` after a restart) equals the fakes' own usage exactly, for
// OpenAI chat JSON, OpenAI chat SSE without include_usage (whose relayed
// stream is byte-identical to the fake's stream without usage) and
// Anthropic SSE.
func TestUsageE2ECountsEqualProvider(t *testing.T) {
	t.Parallel()
	e, oai, ant, agent := startUsageEnv(t, "", nil)
	c := e.client(agent)

	status, _, body := post(t, c, oai.URL+"/v1/chat/completions", chatJSONBody)
	if status != 200 || !bytes.Contains(body, []byte(`"prompt_tokens":1234`)) {
		t.Fatalf("chat JSON: %d %s", status, body)
	}

	// The reference: what the agent receives without airlock.
	_, _, want := post(t, oai.direct(), oai.URL+"/v1/chat/completions", chatSSEBody)
	status, hdr, got := post(t, c, oai.URL+"/v1/chat/completions", chatSSEBody)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("chat SSE: %d %v", status, hdr)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("relayed stream differs from the stream without airlock:\n got %q\nwant %q", got, want)
	}
	if sent := oai.lastBody(); !bytes.Contains(sent, []byte(`"include_usage":true`)) {
		t.Errorf("airlock did not ask the upstream for usage: %s", sent)
	}

	status, _, got = post(t, c, ant.URL+"/v1/messages", msgSSEBody)
	_, _, want = post(t, ant.direct(), ant.URL+"/v1/messages", msgSSEBody)
	if status != 200 || !bytes.Equal(got, want) {
		t.Errorf("anthropic stream: %d\n got %q\nwant %q", status, got, want)
	}

	type fig struct {
		labels map[string]string
		want   float64
	}
	oaiL := func(kind string) map[string]string {
		return map[string]string{"agent": "bot", "rule": "openai", "credential": "llm/openai", "model": "gpt-4o", "kind": kind}
	}
	antL := func(kind string) map[string]string {
		return map[string]string{"agent": "bot", "rule": "anthropic", "credential": "llm/anthropic", "model": "claude-sonnet-4-5", "kind": kind}
	}
	e.waitMetric("airlock_llm_requests_total", map[string]string{"rule": "anthropic", "outcome": "ok"}, 1)
	e.waitMetric("airlock_llm_requests_total", map[string]string{"rule": "openai", "outcome": "ok"}, 2)
	tokens := []fig{
		{oaiL("input"), 2 * 1234}, {oaiL("output"), 2 * 567}, {oaiL("cached_input"), 2 * 1024}, {oaiL("reasoning"), 2 * 256},
		{oaiL("cache_write"), 0},
		// Anthropic input = input_tokens + cache reads + cache writes.
		{antL("input"), 2095 + 1800 + 248}, {antL("output"), 503}, {antL("cached_input"), 1800}, {antL("cache_write"), 248},
	}
	for _, f := range tokens {
		if v, found := e.metric("airlock_llm_tokens_total", f.labels); !found || v != f.want {
			t.Errorf("airlock_llm_tokens_total%v = %v (found %v), want %v", f.labels, v, found, f.want)
		}
	}
	// gpt-4o: 210 × 2.50 + 1024 × 1.25 + 567 × 10 per 1M = $0.007475 a request;
	// claude-sonnet-4-5: 2095 × 3 + 1800 × 0.30 + 248 × 3.75 + 503 × 15 per 1M = $0.0153.
	for rule, want := range map[string]float64{"openai": 2 * 0.007475, "anthropic": 0.0153} {
		if v, _ := e.metric("airlock_llm_cost_usd_total", map[string]string{"rule": rule}); math.Abs(v-want) > 1e-9 {
			t.Errorf("cost of %s = %v, want %v", rule, v, want)
		}
	}
	if v, _ := e.metric("airlock_llm_requests_total", nil); v != 3 {
		t.Errorf("airlock_llm_requests_total = %v, want 3", v)
	}
	waitFor(t, 2*time.Second, func() error {
		if !strings.Contains(e.logs.String(), `"llm_input_tokens":4143`) {
			return errors.New("no audit line with the anthropic request's tokens")
		}
		return nil
	})
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"rule":"openai"`) &&
			!strings.Contains(line, `"llm_model":"gpt-4o","llm_usage":"ok","llm_input_tokens":1234,"llm_output_tokens":567`) {
			t.Errorf("audit line lacks the request's usage: %s", line)
		}
	}

	e.stopAndWait()
	out := e.mustRun("", "usage", "--by", "model", "--json")
	var doc struct {
		Rows []struct {
			Key      string
			Requests int64
			Tokens   struct {
				Input, Output, Reasoning int64
				CachedInput              int64 `json:"cached_input"`
				CacheWrite               int64 `json:"cache_write"`
			}
			CostUSD float64 `json:"cost_usd"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	byModel := map[string]string{}
	for _, r := range doc.Rows {
		byModel[r.Key] = fmt.Sprintf("%d %+v %.6f", r.Requests, r.Tokens, r.CostUSD)
	}
	wantRows := map[string]string{
		"gpt-4o":            "2 {Input:2468 Output:1134 Reasoning:512 CachedInput:2048 CacheWrite:0} 0.014950",
		"claude-sonnet-4-5": "1 {Input:4143 Output:503 Reasoning:0 CachedInput:1800 CacheWrite:248} 0.015300",
	}
	for k, w := range wantRows {
		if byModel[k] != w {
			t.Errorf("airlock usage after restart, %s: %q, want %q\n%s", k, byModel[k], w, out)
		}
	}
}

// tenBudget is a token budget with room for exactly ten reservations of
// concBody (input estimate (len+2)/3 plus max_tokens 100).
func tenBudget() (yaml string, perRequest int64, limit int64) {
	perRequest = int64(len(concBody)+2)/3 + 100
	limit = 10*perRequest + perRequest/2
	return fmt.Sprintf("  - name: ten\n    scope: {agent: bot, rule: openai}\n    limit: {tokens: %d}\n    window: 24h\n", limit), perRequest, limit
}

const concBody = `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"How many requests fit?"}]}`

// TestUsageE2EConcurrentBudgetAndRestart: 50 concurrent requests against a
// budget that fits 10 → exactly 10 reach the upstream, 40 get 429
// BUDGET_EXCEEDED; once spent, the answer names the budget, its limit,
// what is used and its reset (Retry-After, error.message for SDKs); after
// a restart the spent budget still refuses.
func TestUsageE2EConcurrentBudgetAndRestart(t *testing.T) {
	t.Parallel()
	budget, perRequest, limit := tenBudget()
	// Each answer uses more than its reservation, so ten spend the budget.
	e, oai, _, agent := startUsageEnv(t, budget, func(f *llmFake) {
		f.prompt, f.completion, f.cached, f.extra = perRequest, 100, 0, 0
		f.gate = make(chan struct{})
	})
	c := e.client(agent)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, oai.URL+"/v1/chat/completions", strings.NewReader(concBody))
			resp, err := c.Do(req)
			k := "error"
			if err == nil {
				k = strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("X-Airlock-Error")
				resp.Body.Close()
			}
			mu.Lock()
			codes[k]++
			mu.Unlock()
		}()
	}
	waitFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if codes["429 BUDGET_EXCEEDED"] < 40 || oai.hits.Load() < 10 {
			return fmt.Errorf("upstream hits %d, answers %v", oai.hits.Load(), codes)
		}
		return nil
	})
	close(oai.gate)
	wg.Wait()
	if hits := oai.hits.Load(); hits != 10 || codes["200 "] != 10 || codes["429 BUDGET_EXCEEDED"] != 40 {
		t.Fatalf("upstream hits %d (want 10), answers %v", hits, codes)
	}
	e.waitMetric("airlock_llm_requests_total", map[string]string{"outcome": "ok"}, 10)
	if v, _ := e.metric("airlock_budget_rejections_total", map[string]string{"budget": "ten"}); v != 40 {
		t.Errorf("airlock_budget_rejections_total = %v, want 40", v)
	}
	used := 10 * (perRequest + 100)
	checkOverBudget(t, e, c, oai.URL, limit, used)
	if v, _ := e.metric("airlock_budget_used_ratio", map[string]string{"budget": "ten"}); math.Abs(v-float64(used)/float64(limit)) > 1e-9 {
		t.Errorf("airlock_budget_used_ratio = %v, want %v", v, float64(used)/float64(limit))
	}

	e.stopAndWait()
	out := e.mustRun("", "usage", "budgets", "--json")
	if !strings.Contains(out, `"name": "ten"`) || !strings.Contains(out, fmt.Sprintf(`"used": %d`, used)) {
		t.Errorf("usage budgets after restart:\n%s", out)
	}
	e.serveWaited()
	c = e.client(agent)
	checkOverBudget(t, e, c, oai.URL, limit, used)
	if hits := oai.hits.Load(); hits != 10 {
		t.Errorf("upstream hits after restart %d, want 10", hits)
	}
}

// checkOverBudget asserts the shape of the answer to a request against
// the spent budget "ten".
func checkOverBudget(t *testing.T, e *env, c *http.Client, base string, limit, used int64) {
	t.Helper()
	status, hdr, body := post(t, c, base+"/v1/chat/completions", concBody)
	if status != http.StatusTooManyRequests || hdr.Get("X-Airlock-Error") != "BUDGET_EXCEEDED" {
		t.Fatalf("over budget: %d %v %s", status, hdr, body)
	}
	var doc struct {
		Error struct {
			Code, Message, Suggestion string
			Budget                    *struct {
				Name, Unit  string
				Limit, Used float64
				Reset       string `json:"resets_at"`
			}
		}
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Error.Budget == nil {
		t.Fatalf("over-budget body %s: %v", body, err)
	}
	b := doc.Error.Budget
	reset, err := time.Parse(time.RFC3339, b.Reset)
	if doc.Error.Code != "BUDGET_EXCEEDED" || b.Name != "ten" || b.Unit != "tokens" || b.Limit != float64(limit) ||
		b.Used != float64(used) || err != nil || !strings.Contains(doc.Error.Message, `"ten"`) || doc.Error.Suggestion == "" {
		t.Errorf("over-budget body: %s", body)
	}
	ra, err := strconv.Atoi(hdr.Get("Retry-After"))
	if until := time.Until(reset).Seconds(); err != nil || math.Abs(float64(ra)-until) > 5 || ra < 3600 {
		t.Errorf("Retry-After %q, reset in %.0fs", hdr.Get("Retry-After"), until)
	}
	if hdr.Get("X-Should-Retry") != "false" {
		t.Errorf("X-Should-Retry = %q: SDKs would retry a spent budget", hdr.Get("X-Should-Retry"))
	}
	_ = e
}

const sdkAgentScript = `
const OpenAI = require('openai');
const { fetch, EnvHttpProxyAgent } = require('undici');
const dispatcher = new EnvHttpProxyAgent();
const c = new OpenAI({apiKey: 'via-airlock', baseURL: process.env.BASE + '/v1', maxRetries: 0,
  fetch: (url, init) => fetch(url, { ...init, dispatcher })});
(async () => {
  const out = {};
  const s = await c.chat.completions.create({model: 'gpt-4o', stream: true, max_tokens: 100,
    messages: [{role: 'user', content: 'hi'}]});
  out.chunks = 0; out.usageSeen = false; out.text = '';
  for await (const ch of s) {
    out.chunks++;
    if (ch.usage) out.usageSeen = true;
    if (ch.choices.length && ch.choices[0].delta.content) out.text += ch.choices[0].delta.content;
  }
  try {
    await c.chat.completions.create({model: 'gpt-4o', max_tokens: 100, messages: [{role: 'user', content: 'again'}]});
    out.second = 'no error';
  } catch (e) {
    out.rateLimit = e instanceof OpenAI.RateLimitError;
    out.status = e.status;
    out.message = e.message;
    out.code = e.headers && e.headers['x-airlock-error'];
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({fatal: String(e && e.stack || e)})); });
`

// TestUsageE2EOpenAINodeSDK: the official openai npm SDK, through the real
// proxy (undici's EnvHttpProxyAgent: Node 20's fetch ignores HTTPS_PROXY),
// streams without seeing the usage chunk airlock asked for, and the spent
// budget reaches it as a RateLimitError whose message names the budget.
func TestUsageE2EOpenAINodeSDK(t *testing.T) {
	t.Parallel()
	mods := nodeModulesDir(t, "openai", "undici")
	oaiFake := 1234 + 567
	budget := fmt.Sprintf("  - name: one-call\n    scope: {agent: bot}\n    limit: {tokens: %d}\n    window: day\n", oaiFake+50)
	e, oai, _, agent := startUsageEnv(t, budget, nil)
	cmd := execNode(t, sdkAgentScript, mods, e, agent, oai.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s%s", err, raw, stderr.String())
	}
	var out struct {
		Chunks               int
		UsageSeen, RateLimit bool
		Text, Message, Code  string
		Status               int
		Fatal, Second        string
	}
	if err := json.Unmarshal(bytes.TrimSpace(raw), &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if out.Fatal != "" || out.Second != "" {
		t.Fatalf("sdk: %s", raw)
	}
	if out.Chunks != len(oai.chunks)+2 || out.UsageSeen || out.Text != strings.Join(oai.chunks, "") {
		t.Errorf("stream as the SDK saw it: %s", raw)
	}
	t.Logf("SDK error message: %s", out.Message)
	if !out.RateLimit || out.Status != 429 || out.Code != "BUDGET_EXCEEDED" || !strings.Contains(out.Message, `budget "one-call" exceeded`) {
		t.Errorf("second call: %s", raw)
	}
	if hits := oai.hits.Load(); hits != 1 {
		t.Errorf("upstream hits %d, want 1", hits)
	}
}

// nodeModulesDir is where .ci/run installs the npm packages (skips when
// absent unless AIRLOCK_REQUIRE_NODE_SDK is set).
func nodeModulesDir(t *testing.T, pkgs ...string) string {
	t.Helper()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	if out, err := execOutput("go", "env", "GOPATH"); err == nil {
		gopath = strings.TrimSpace(out)
	}
	dir := filepath.Join(gopath, "airlock-node", "node_modules")
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, p, "package.json")); err != nil {
			if os.Getenv("AIRLOCK_REQUIRE_NODE_SDK") != "" {
				t.Fatalf("npm package %s not in %s: run .ci/run", p, dir)
			}
			t.Skipf("npm package %s not installed (run .ci/run)", p)
		}
	}
	return dir
}

// TestUsageE2EReservationReleasedWithoutResponse: a request whose upstream
// cannot be reached gets its 502 and gives its reservation back at once,
// so the next request fits a budget with room for one.
func TestUsageE2EReservationReleasedWithoutResponse(t *testing.T) {
	t.Parallel()
	per := int64(len(concBody)+2)/3 + 100
	budget := fmt.Sprintf("  - name: one\n    scope: {agent: bot}\n    limit: {tokens: %d}\n    window: day\n", per+per/2)
	e, oai, _, agent := startUsageEnv(t, budget, nil)
	c := e.client(agent)
	downURL := "https://" + ruleHost(t, e, "down") + "/v1/chat/completions"
	if status, hdr, body := post(t, c, downURL, concBody); status != http.StatusBadGateway {
		t.Fatalf("unreachable upstream: %d %v %s", status, hdr, body)
	}
	if status, _, body := post(t, c, oai.URL+"/v1/chat/completions", concBody); status != http.StatusOK {
		t.Fatalf("after a failed request the budget refuses: %d %s", status, body)
	}
	e.waitMetric("airlock_llm_requests_total", map[string]string{"rule": "down", "outcome": "no_usage"}, 1)
}

// ruleHost is the host of a rule of the home's policy.
func ruleHost(t *testing.T, e *env, rule string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "- name: "+rule+"\n    host: \"")
	host, _, ok := strings.Cut(rest, "\"")
	if !ok {
		t.Fatalf("no rule %s", rule)
	}
	return host
}

// TestUsageE2EPolicyReloadReplacesBudgets: a policy change seen by the
// running serve (its file watcher) replaces the budgets: usage already
// counted stays, and the smaller limit refuses the next request.
func TestUsageE2EPolicyReloadReplacesBudgets(t *testing.T) {
	t.Parallel()
	budget := func(limit int64) string {
		return fmt.Sprintf("  - name: team\n    scope: {rule: openai}\n    limit: {tokens: %d}\n    window: day\n", limit)
	}
	e, oai, ant, agent := startUsageEnv(t, budget(1_000_000), nil)
	c := e.client(agent)
	if status, _, body := post(t, c, oai.URL+"/v1/chat/completions", concBody); status != http.StatusOK {
		t.Fatalf("first request: %d %s", status, body)
	}
	e.waitMetric("airlock_llm_requests_total", map[string]string{"outcome": "ok"}, 1)
	// 1234 + 567 tokens are used: a limit of 1900 leaves less than a reservation (133).
	pol, err := os.ReadFile(filepath.Join(e.home, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.writePolicy(strings.Replace(string(pol), budget(1_000_000), budget(1900), 1))
	waitFor(t, 10*time.Second, func() error {
		if v, _ := e.metric("airlock_policy_reloads_total", map[string]string{"result": "success"}); v < 1 {
			return errors.New("policy not reloaded yet")
		}
		return nil
	})
	status, hdr, body := post(t, c, oai.URL+"/v1/chat/completions", concBody)
	if status != http.StatusTooManyRequests || hdr.Get("X-Airlock-Error") != "BUDGET_EXCEEDED" ||
		!bytes.Contains(body, []byte(`"limit":1900,"used":1801`)) {
		t.Fatalf("after the reload: %d %s", status, body)
	}
	// The Anthropic rule is outside the budget's scope.
	if status, _, body := post(t, c, ant.URL+"/v1/messages", msgSSEBody); status != http.StatusOK {
		t.Errorf("unbudgeted rule: %d %s", status, body)
	}
	if hits := oai.hits.Load(); hits != 1 {
		t.Errorf("upstream hits %d, want 1", hits)
	}
}
