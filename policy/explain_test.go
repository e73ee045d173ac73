package policy

import (
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
		"dotdot cleaned":   {"bot", "GET", "https://api.openai.com/v1/../admin", ActionDeny, "", "no rule matches"},
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
