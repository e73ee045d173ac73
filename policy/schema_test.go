package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSchemaAdditions: every key of SCHEMA.md lands in its Go field, with
// defaults filled in.
func TestSchemaAdditions(t *testing.T) {
	p, err := Load("testdata/good/extras.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rule := func(name string) *Rule {
		for _, r := range p.Rules {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no rule %s", name)
		return nil
	}
	if p.Egress.Unmatched != ActionAsk {
		t.Errorf("unmatched = %q", p.Egress.Unmatched)
	}
	if a, _ := p.ConnectDecision("bot", "nowhere.example", 443); a != ActionAsk {
		t.Errorf("ConnectDecision for an unnamed host = %q, want ask", a)
	}
	if p.Approvals != (Approvals{Timeout: 30 * time.Second, Webhook: "https://hooks.example/T000/B000/XXXX", Remember: "1h"}) {
		t.Errorf("approvals = %+v", p.Approvals)
	}
	oa := rule("openai")
	if oa.Usage != UsageOpenAI || oa.DefaultMaxTokens != 2048 || *oa.Approval != (Approval{Required: true, Remember: "1h"}) {
		t.Errorf("openai: usage %q max %d approval %+v", oa.Usage, oa.DefaultMaxTokens, oa.Approval)
	}
	if oa.Approval.RememberFor() != time.Hour {
		t.Errorf("RememberFor = %v", oa.Approval.RememberFor())
	}
	az := rule("azure")
	if az.Usage != UsageOpenAI || az.DefaultMaxTokens != DefaultReserveTokens || !az.Inject.Placeholders || az.Approval.Remember != RememberOnce {
		t.Errorf("azure: %+v %+v", az, az.Approval)
	}
	an := rule("anthropic")
	if an.Usage != UsageAnthropic || !slices.Equal(an.KeepAgentAuth, []string{"Authorization"}) || an.HeadersOverride {
		t.Errorf("anthropic: usage %q keep %v", an.Usage, an.KeepAgentAuth)
	}
	if got := an.StripAuth(); !slices.Equal(got, []string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Proxy-Authorization"}) {
		t.Errorf("anthropic StripAuth = %v", got)
	}
	if got := oa.StripAuth(); !slices.Equal(got, AuthHeaders) {
		t.Errorf("openai StripAuth = %v", got)
	}
	ll := rule("local-llm")
	if ll.Usage != UsageOpenAI || ll.Approval != nil || ll.StripAuth() != nil {
		t.Errorf("local-llm: %+v", ll)
	}
	gl := rule("gitlab")
	if gl.Usage != UsageNone || gl.DefaultMaxTokens != 0 || gl.UnsafePaths != UnsafeEncodedSlash|UnsafeNoncanonical || !gl.HeadersOverride {
		t.Errorf("gitlab: %+v", gl)
	}
	tg := rule("telegram")
	if tg.Inject.Type != InjectPlaceholder || !tg.Inject.Placeholders || tg.StripAuth() != nil {
		t.Errorf("telegram: %+v", tg.Inject)
	}
	if len(p.Budgets) != 2 {
		t.Fatalf("budgets = %+v", p.Budgets)
	}
	b := p.Budgets[0]
	if b.Name != "team-monthly" || b.Agent != "research-bot" || b.Rule != "openai" || b.Credential != "openai/api-key" ||
		b.USD != 50 || b.Tokens != 0 || b.Window != WindowMonth || b.Location.String() != "Europe/Zurich" || b.WarnAt != 0.8 || b.Line != 40 {
		t.Errorf("budget 0 = %+v", b)
	}
	if !b.Applies("research-bot", "openai", "openai/api-key") || b.Applies("other", "openai", "openai/api-key") {
		t.Error("Applies wrong")
	}
	b = p.Budgets[1]
	if b.Tokens != 1000000 || b.Window != WindowRolling || b.Location != time.UTC || b.Agent != "" {
		t.Errorf("budget 1 = %+v", b)
	}
	if p.Prices["gpt-4o"] != (Price{Input: 2.5, Output: 10, CachedInput: 1.25}) || len(p.Prices) != 2 {
		t.Errorf("prices = %+v", p.Prices)
	}
}

// TestSchemaDefaults: a policy without the new keys gets the documented
// defaults.
func TestSchemaDefaults(t *testing.T) {
	p := mustParse(t, `
version: 1
rules:
  - {name: a, host: api.openai.com, credential: openai/api-key}
  - {name: b, host: api.example.com, credential: x/y, approval: required}
  - {name: c, host: api.example.com, action: deny}
`)
	if p.Approvals != (Approvals{Timeout: DefaultApprovalTimeout, Remember: RememberSession}) || p.Budgets != nil || p.Prices != nil {
		t.Errorf("sections = %+v %+v %+v", p.Approvals, p.Budgets, p.Prices)
	}
	a, b, c := p.Rules[0], p.Rules[1], p.Rules[2]
	if a.Usage != UsageOpenAI || a.DefaultMaxTokens != DefaultReserveTokens || a.Approval != nil || a.UnsafePaths != 0 {
		t.Errorf("a = %+v", a)
	}
	if b.Usage != UsageNone || b.DefaultMaxTokens != 0 || b.Approval.Remember != RememberSession {
		t.Errorf("b = %+v", b)
	}
	if c.Usage != UsageNone || c.StripAuth() != nil {
		t.Errorf("c = %+v", c)
	}
}

func TestStripOverrides(t *testing.T) {
	h := map[string][]string{"X-Http-Method-Override": {"DELETE"}, "X-Original-Url": {"/admin"}, "X-Rewrite-Url": {"/x"},
		"X-Http-Method": {"PUT"}, "X-Method-Override": {"PATCH"}, "Accept": {"*/*"}}
	StripOverrides(h)
	if len(h) != 1 || h["Accept"] == nil {
		t.Errorf("left %v", h)
	}
	for _, k := range append(StripHeaders, AuthHeaders...) {
		if k != strings.TrimSpace(k) || k != canonical(k) {
			t.Errorf("%q is not canonical", k)
		}
	}
}
