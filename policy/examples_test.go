package policy

import (
	"net/http"
	"path/filepath"
	"slices"
	"testing"
)

// TestExamplePolicies: every shipped example parses.
func TestExamplePolicies(t *testing.T) {
	files, _ := filepath.Glob("../examples/policies/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example policies")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestAnthropicExampleHeaders: the header set @anthropic-ai/sdk sends
// (x-api-key with the agent's dummy key, a placeholder Bearer, its own
// anthropic-version, stainless telemetry) through the shipped rule: no
// agent auth header survives, the SDK's version stays, the rest is kept.
func TestAnthropicExampleHeaders(t *testing.T) {
	p, err := Load("../examples/policies/anthropic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := p.Judge("claude-bot", "POST", "api.anthropic.com", 443, "/v1/messages")
	if err != nil || r == nil || r.Name != "anthropic-messages" {
		t.Fatalf("Judge = %v, %v", r, err)
	}
	if r.Usage != UsageAnthropic || r.DefaultMaxTokens != 8192 {
		t.Errorf("usage %q max %d", r.Usage, r.DefaultMaxTokens)
	}
	h := http.Header{}
	for k, v := range map[string]string{
		"x-api-key": "sk-ant-dummy", "Authorization": "Bearer sk-ant-dummy", "anthropic-version": "2023-06-01-sdk",
		"anthropic-beta": "prompt-caching-2024-07-31", "Content-Type": "application/json", "Accept": "application/json",
		"User-Agent": "Anthropic/JS 0.30.0", "X-Stainless-Lang": "js", "X-Stainless-Retry-Count": "0",
	} {
		h.Set(k, v)
	}
	r.ApplyHeaders(h)
	for _, k := range []string{"Authorization", "X-Api-Key"} {
		if h.Get(k) != "" {
			t.Errorf("%s survived: %q", k, h.Get(k))
		}
	}
	if h.Get("Anthropic-Version") != "2023-06-01-sdk" {
		t.Errorf("anthropic-version = %q, want the SDK's", h.Get("Anthropic-Version"))
	}
	for _, k := range []string{"Anthropic-Beta", "Content-Type", "Accept", "User-Agent", "X-Stainless-Lang", "X-Stainless-Retry-Count"} {
		if h.Get(k) == "" {
			t.Errorf("%s was dropped", k)
		}
	}
	h = http.Header{}
	r.ApplyHeaders(h)
	if h.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("static anthropic-version not set when the agent sent none: %v", h)
	}
	r.HeadersOverride = true
	h = http.Header{"Anthropic-Version": {"x"}}
	r.ApplyHeaders(h)
	if !slices.Equal(h["Anthropic-Version"], []string{"2023-06-01"}) {
		t.Errorf("headers_override did not win: %v", h)
	}
}

// TestApplyHeadersPlaceholders: on a placeholders rule an auth header that
// carries a placeholder is kept for substitution; a plain one is stripped.
func TestApplyHeadersPlaceholders(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - name: ph
    host: api.example.com
    credential: ex/key
    inject: {type: bearer, placeholders: true}
  - name: plain
    host: api.example.org
    credential: ex/key
`)
	h := http.Header{"X-Api-Key": {"{{airlock:ex/key}}"}, "Api-Key": {"dummy"}, "Authorization": {"Bearer x"}}
	p.Rules[0].ApplyHeaders(h)
	if h.Get("X-Api-Key") == "" || h.Get("Api-Key") != "" || h.Get("Authorization") != "" {
		t.Errorf("placeholders rule left %v", h)
	}
	h = http.Header{"X-Api-Key": {"{{airlock:ex/key}}"}}
	p.Rules[1].ApplyHeaders(h)
	if len(h) != 0 {
		t.Errorf("plain rule left %v", h)
	}
}
