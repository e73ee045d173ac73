package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	p := mustParse(t, `
version: 1
egress: {mode: report}
rules:
  - name: openai
    agents: [bot]
    host: api.openai.com
    paths: ["/v1/**"]
    credential: openai/api-key
  - name: git
    host: github.com
    action: tunnel
  - name: maps
    host: maps.example.com
    credential: maps/key
    inject: {type: query, param: key}
  - name: pastebin
    host: pastebin.com
    action: deny
  - name: local
    host: 10.0.0.5:8080
    credential: local/key
`)
	cases := map[string]struct {
		agent, method, url string
		action, rule       string
		reason             string
	}{
		"inject":           {"bot", "post", "https://api.openai.com/v1/chat/completions?x=1", ActionInject, "openai", "first matching rule"},
		"no scheme":        {"bot", "GET", "api.openai.com/v1/models", ActionInject, "openai", "first matching rule"},
		"path outside":     {"bot", "GET", "https://api.openai.com/admin", ActionDeny, "", "no rule matches"},
		"dotdot refused":   {"bot", "GET", "https://api.openai.com/v1/../admin", ActionDeny, "", "400 BAD_PATH"},
		"other agent":      {"eve", "GET", "https://api.openai.com/v1/models", ActionDeny, "", "egress.unmatched is deny"},
		"tunnel":           {"bot", "GET", "https://github.com/x/y.git", ActionTunnel, "git", "decided at CONNECT"},
		"tunnel over http": {"bot", "GET", "http://github.com/", ActionAllow, "git", "tunnel rule met by plain http"},
		"deny host":        {"bot", "GET", "https://pastebin.com/raw/x", ActionDeny, "pastebin", "decided at CONNECT"},
		"insecure refused": {"bot", "GET", "http://10.0.0.5:8080/x", ActionDeny, "local", "insecure_http is false"},
		"bad scheme":       {"bot", "GET", "ftp://x.example.com/", ActionDeny, "", "scheme"},
		"bad port":         {"bot", "GET", "https://x.example.com:99999/", ActionDeny, "", "port"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ex := p.Explain(tc.agent, tc.method, tc.url)
			if ex.Action != tc.action || ex.Rule != tc.rule || !strings.Contains(ex.Reason, tc.reason) {
				t.Errorf("Explain(%s %s) = action %s rule %q reason %q; want %s %q %q", tc.method, tc.url, ex.Action, ex.Rule, ex.Reason, tc.action, tc.rule, tc.reason)
			}
		})
	}
	ex := p.Explain("bot", "GET", "https://maps.example.com/geo")
	s := ex.String()
	for _, want := range []string{"maps (test.yaml:", "credential: maps/key", "query parameter key", "action:     inject"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if ex.Err != nil || ex.Path != "/geo" || ex.Port != 443 || ex.Line == 0 {
		t.Errorf("explanation = %+v", ex)
	}
	if s := p.Explain("bot", "GET", "https://pastebin.com/").String(); !strings.Contains(s, "would_deny") {
		t.Errorf("report mode not explained:\n%s", s)
	}
	if ex := p.Explain("bot", "GET", "ftp://x/"); ex.Err == nil || !strings.Contains(ex.String(), "error:") {
		t.Errorf("bad URL explanation = %+v", ex)
	}
}

// TestExplainNewFields: explain shows the judged path, approval, metering,
// budgets, unsafe_paths and stripped headers, and names the nearest rule
// when none matches.
func TestExplainNewFields(t *testing.T) {
	p, err := Load("testdata/good/extras.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Explain("research-bot", "POST", "https://api.openai.com/v1//chat/%63ompletions").String()
	for _, want := range []string{
		"path:       /v1/chat/completions\n",
		"approval:   required; an approval is remembered for 1h",
		"usage:      metered as openai; 2048 tokens reserved",
		"budgets:    team-monthly\n",
		"strips:     Authorization, X-Api-Key, Api-Key, X-Goog-Api-Key, Proxy-Authorization from the agent's request",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("explain lacks %q:\n%s", want, s)
		}
	}
	s = p.Explain("bot", "GET", "https://gitlab.example.com/api/v4/projects/g%2fp/repository/files").String()
	for _, want := range []string{"path:       /api/v4/projects/g%2Fp/repository/files\n", "unsafe:     paths with encoded_slash, noncanonical_escapes accepted"} {
		if !strings.Contains(s, want) {
			t.Errorf("explain lacks %q:\n%s", want, s)
		}
	}
	ex := p.Explain("bot", "GET", "https://gitlab.example.com/api/v4/projects/g;x/repository/files")
	if !errors.Is(ex.Err, ErrBadPath) || ex.Rule != "gitlab" || !strings.Contains(ex.Reason, "unsafe_paths: [semicolon]") {
		t.Errorf("semicolon explanation = %+v", ex)
	}
	ex = p.Explain("bot", "GET", "https://gitlab.example.com/api/v3/other")
	if ex.Action != ActionAsk || !strings.Contains(ex.Nearest, "rule gitlab (testdata/good/extras.yaml:") || !strings.Contains(ex.Nearest, "it allows paths /api/v4/projects/*/repository/**") {
		t.Errorf("nearest = %q action %s", ex.Nearest, ex.Action)
	}
	if ex := p.Explain("bot", "GET", "https://unknown.example/"); ex.Action != ActionAsk {
		t.Errorf("unnamed host with unmatched ask = %+v", ex)
	}
}

func TestNoMatchDetail(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - {name: admin, host: api.x.com, agents: [ops], paths: ["/admin/**"], credential: x/admin}
  - {name: chat, host: api.x.com, agents: [bot], methods: [POST], paths: ["/v1/chat/**"], credential: x/secret-key}
`)
	cases := map[string]struct{ agent, method, path, want string }{
		"method": {"bot", "GET", "/v1/chat/x", "nearest: rule chat (test.yaml:5:5): it allows methods POST, not GET"},
		"path":   {"bot", "POST", "/v1/other", "nearest: rule chat (test.yaml:5:5): it allows paths /v1/chat/**"},
		"agent":  {"eve", "GET", "/admin/x", "nearest: rule admin (test.yaml:4:5): it is for other agents"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := p.NoMatchDetail(tc.agent, tc.method, "api.x.com", 443, tc.path)
			if !strings.HasPrefix(d, "no rule matches this agent, method and path; ") || !strings.Contains(d, tc.want) {
				t.Errorf("detail %q, want %q", d, tc.want)
			}
			for _, leak := range []string{"x/secret-key", "x/admin", "ops"} {
				if strings.Contains(d, leak) {
					t.Errorf("detail names %q: %s", leak, d)
				}
			}
		})
	}
	if d := p.NoMatchDetail("bot", "GET", "other.com", 443, "/"); d != "no rule names other.com for this agent" {
		t.Errorf("no host detail = %q", d)
	}
}
