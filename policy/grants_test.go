package policy

import "testing"

func TestAllowed(t *testing.T) {
	p := mustParse(t, `
version: 1
grants:
  - agents: [research-bot]
    credentials: ["signing/*", "openai/*"]
    actions: [use, list]
    max_ttl: 60
  - agents: [deployer]
    credentials: ["deploy/*/token"]
    actions: [retrieve, http_header]
  - credentials: ["*"]
    actions: [list]
  - agents: [signer]
    credentials: ["keys/**"]
    actions: [sign]
`)
	cases := map[string]struct {
		agent, cred, action string
		want                bool
		line                int
	}{
		"use":                        {"research-bot", "openai/api-key", "use", true, 4},
		"use implies sign":           {"research-bot", "signing/k1", "sign", true, 4},
		"use implies encrypt":        {"research-bot", "signing/k1", "encrypt", true, 4},
		"use implies decrypt":        {"research-bot", "signing/k1", "decrypt", true, 4},
		"use implies http_request":   {"research-bot", "openai/api-key", "http_request", true, 4},
		"use is not retrieve":        {"research-bot", "openai/api-key", "retrieve", false, 0},
		"use is not http_header":     {"research-bot", "openai/api-key", "http_header", false, 0},
		"star stays in one segment":  {"research-bot", "openai/a/b", "use", false, 0},
		"other agent":                {"intruder", "openai/api-key", "use", false, 0},
		"middle star":                {"deployer", "deploy/prod/token", "retrieve", true, 8},
		"middle star wrong tail":     {"deployer", "deploy/prod/key", "retrieve", false, 0},
		"explicit http_header":       {"deployer", "deploy/prod/token", "http_header", true, 8},
		"retrieve is not use":        {"deployer", "deploy/prod/token", "use", false, 0},
		"star alone everything":      {"anyone", "a/b/c", "list", true, 11},
		"first grant wins":           {"research-bot", "openai/x", "list", true, 4},
		"sign is only sign":          {"signer", "keys/a/b", "encrypt", false, 0},
		"dstar any depth":            {"signer", "keys/a/b", "sign", true, 13},
		"unknown action":             {"research-bot", "openai/api-key", "steal", false, 0},
		"empty credential":           {"anyone", "", "list", false, 0},
		"http_request not grantable": {"signer", "keys/a", "http_request", false, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g, ok := p.Allowed(tc.agent, tc.cred, tc.action)
			if ok != tc.want || (ok && g.Line != tc.line) || (!ok && g != nil) {
				t.Errorf("Allowed(%q, %q, %q) = %+v, %v; want %v at line %d", tc.agent, tc.cred, tc.action, g, ok, tc.want, tc.line)
			}
		})
	}
	if g, _ := p.Allowed("research-bot", "openai/x", "use"); g.MaxTTL.Seconds() != 60 {
		t.Errorf("max_ttl = %v", g.MaxTTL)
	}
	if _, ok := Default().Allowed("a", "b", "list"); ok {
		t.Error("default policy grants something")
	}
}
