package usage

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nodeModules is where .ci/run installs the npm packages the tests use.
func nodeModules(t *testing.T, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		t.Skip("no GOPATH")
	}
	dir := filepath.Join(strings.TrimSpace(string(gopath)), "airlock-node", "node_modules")
	if _, err := os.Stat(filepath.Join(dir, pkg, "package.json")); err != nil {
		t.Skipf("npm package %s not installed (run .ci/run)", pkg)
	}
	_ = node
	return dir
}

const sdkScript = `
const OpenAI = require('openai');
const c = new OpenAI({apiKey: 'sk-unused', baseURL: process.env.BASE + '/v1', maxRetries: 0});
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
    await c.chat.completions.create({model: 'gpt-4o', max_tokens: 100, messages: []});
    out.second = 'no error';
  } catch (e) {
    out.rateLimit = e instanceof OpenAI.RateLimitError;
    out.status = e.status;
    out.message = e.message;
    out.code = e.headers && e.headers['x-airlock-error'];
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.log(JSON.stringify({fatal: String(e)})); });
`

// TestOpenAISDK: the official openai npm SDK streams through the meter
// without seeing the usage chunk airlock asked for, and a spent budget
// reaches it as a RateLimitError naming the budget.
func TestOpenAISDK(t *testing.T) {
	mods := nodeModules(t, "openai")
	up := newFake(t)
	st := NewMemStore()
	b := []Budget{{Name: "one-call", Agent: "bot", Tokens: usageA.Prompt + usageA.Completion + 50, Window: "day"}}
	g := newGateway(t, up, st, b, openaiTarget)
	cmd := exec.Command("node", "-e", sdkScript)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods, "BASE="+g.srv.URL, "HTTPS_PROXY=", "HTTP_PROXY=")
	raw, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, raw)
	}
	var out struct {
		Chunks               int
		UsageSeen, RateLimit bool
		Text, Message, Code  string
		Status               int
		Fatal, Second        string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if out.Fatal != "" || out.Second != "" {
		t.Fatalf("sdk: %s", raw)
	}
	if out.Chunks != len(up.chunks)+2 || out.UsageSeen || out.Text != strings.Join(up.chunks, "") {
		t.Errorf("stream as the SDK saw it: %s", raw)
	}
	t.Logf("SDK error message: %s", out.Message)
	if !out.RateLimit || out.Status != 429 || out.Code != "BUDGET_EXCEEDED" || !strings.Contains(out.Message, `"one-call"`) {
		t.Errorf("second call: %s", raw)
	}
	rows := waitRows(t, st, 1)
	if rows[0].Tokens.Input != usageA.Prompt || rows[0].Tokens.Output != usageA.Completion {
		t.Errorf("counted %s", fmtRow(rows[0]))
	}
}
