package policy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// AuthHeaders are the request headers that carry an API credential in the
// families airlock injects (bearer, API key, Azure, Google, proxy auth).
// On a rule that injects, the proxy deletes every one the agent sent
// except those in Rule.KeepAgentAuth: an SDK's placeholder
// "Authorization: Bearer x" must not reach an upstream that is sent the
// real key in X-Api-Key. Canonical form (http.CanonicalHeaderKey).
var AuthHeaders = []string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Proxy-Authorization"}

// StripHeaders are request headers that make an upstream read another
// method or path than the one judged (method overrides and rewrite
// headers honoured by some frameworks, IIS and Symfony among them). The
// proxy deletes them from every request it forwards. Canonical form.
var StripHeaders = []string{
	"X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Original-Url", "X-Rewrite-Url",
}

// StripOverrides deletes [StripHeaders] from h.
func StripOverrides(h http.Header) {
	for _, k := range StripHeaders {
		delete(h, k)
	}
}

// StripAuth returns the auth headers the proxy deletes from the agent's
// request before injecting this rule's credential: [AuthHeaders] minus
// KeepAgentAuth, plus the header the credential goes into, plus
// X-Amz-Security-Token for aws_sigv4. Empty for rules that do not inject
// and for inject type placeholder (the agent's own headers carry the
// placeholders there). The slice is shared: do not modify it.
func (r *Rule) StripAuth() []string { return r.stripAuth }

func (r *Rule) computeStripAuth() {
	if r.Action != ActionInject || r.Inject.Type == InjectPlaceholder {
		return
	}
	for _, h := range AuthHeaders {
		if !contains(r.KeepAgentAuth, h) {
			r.stripAuth = append(r.stripAuth, h)
		}
	}
	extra := []string{http.CanonicalHeaderKey(r.Inject.Header)}
	if r.Inject.Type == InjectSigV4 {
		extra = append(extra, "X-Amz-Security-Token")
	}
	for _, h := range extra {
		if h != "" && !contains(r.stripAuth, h) {
			r.stripAuth = append(r.stripAuth, h)
		}
	}
}

// defaultUsage is the meter a rule gets without usage:.
func defaultUsage(host string) string {
	switch {
	case host == "api.openai.com", strings.HasSuffix(host, ".openai.azure.com"):
		return UsageOpenAI
	case host == "api.anthropic.com":
		return UsageAnthropic
	}
	return UsageNone
}

// ruleExtras reads the keys added for metering, approval, path safety and
// header handling, once the action is known.
func (p *parser) ruleExtras(ctx string, m map[string]entry, r *Rule, approvals Approvals) {
	p.notWith(ctx, m, r.Action, map[string][]string{
		ActionDeny:   {"usage", "default_max_tokens", "approval", "headers_override", "keep_agent_auth"},
		ActionTunnel: {"usage", "default_max_tokens", "headers_override", "keep_agent_auth", "unsafe_paths"},
	})
	r.Usage = UsageNone
	if r.Action == ActionInject || r.Action == ActionAllow {
		r.Usage = defaultUsage(r.Host)
	}
	if e, ok := m["usage"]; ok {
		if s, ok := p.str(ctx+".usage", e.val); ok {
			switch s {
			case UsageOpenAI, UsageAnthropic, UsageNone:
				r.Usage = s
			default:
				p.errf(e.val, ctx+".usage", "unknown usage %q (want openai, anthropic or none)", s)
			}
		}
	}
	if r.Usage != UsageNone {
		r.DefaultMaxTokens = DefaultReserveTokens
	}
	if e, ok := m["default_max_tokens"]; ok {
		if n, ok := p.integer(ctx+".default_max_tokens", e.val); ok {
			switch {
			case n < 1 || n > 10_000_000:
				p.errf(e.val, ctx+".default_max_tokens", "want 1 to 10000000 tokens")
			case r.Usage == UsageNone:
				p.errf(e.key, ctx+".default_max_tokens", "needs a metered rule (usage: openai or anthropic)")
			}
			r.DefaultMaxTokens = n
		}
	}
	if e, ok := m["approval"]; ok {
		r.Approval = p.approval(ctx+".approval", e.val, approvals.Remember)
	}
	if e, ok := m["unsafe_paths"]; ok {
		r.UnsafePaths = p.unsafePaths(ctx+".unsafe_paths", e.val)
		if _, has := m["paths"]; !has && r.Action != ActionTunnel {
			p.errf(e.key, ctx+".unsafe_paths", "has no effect on a rule without paths (such a rule never refuses a path)")
		}
	}
	p.ruleHeaderKeys(ctx, m, r)
	r.computeStripAuth()
}

// notWith reports keys the rule's action does not take.
func (p *parser) notWith(ctx string, m map[string]entry, action string, banned map[string][]string) {
	for _, k := range banned[action] {
		if e, ok := m[k]; ok {
			p.errf(e.key, ctx+"."+k, "not allowed with action %s", action)
		}
	}
}

// ruleHeaderKeys reads headers_override and keep_agent_auth.
func (p *parser) ruleHeaderKeys(ctx string, m map[string]entry, r *Rule) {
	if e, ok := m["headers_override"]; ok {
		r.HeadersOverride, _ = p.boolean(ctx+".headers_override", e.val)
		if _, has := m["headers"]; !has && r.Action != ActionTunnel && r.Action != ActionDeny {
			p.errf(e.key, ctx+".headers_override", "needs headers")
		}
	}
	e, ok := m["keep_agent_auth"]
	if !ok {
		return
	}
	if r.Action == ActionAllow {
		p.errf(e.key, ctx+".keep_agent_auth", "needs a credential (allow rules strip no auth header)")
	}
	list, nodes, _ := p.strList(ctx+".keep_agent_auth", e.val, " (omit the key to strip every agent auth header)")
	for i, s := range list {
		c := http.CanonicalHeaderKey(s)
		ictx := ctx + ".keep_agent_auth[" + strconv.Itoa(i) + "]"
		switch {
		case c == "Proxy-Authorization":
			p.errf(nodes[i], ictx, "Proxy-Authorization carries the agent's airlock token and is never forwarded")
		case !contains(AuthHeaders, c):
			p.errf(nodes[i], ictx, "%q is not an auth header airlock strips (those are %s)", s, strings.Join(AuthHeaders[:len(AuthHeaders)-1], ", "))
		case r.Inject.Header != "" && strings.EqualFold(s, r.Inject.Header):
			p.errf(nodes[i], ictx, "%q is the header the credential is injected into", s)
		case contains(r.KeepAgentAuth, c):
			p.errf(nodes[i], ictx, "%q listed twice", s)
		default:
			r.KeepAgentAuth = append(r.KeepAgentAuth, c)
		}
	}
}

// approval reads "approval: required" or {required: bool, remember: ...}.
// It returns nil when no approval is required.
func (p *parser) approval(ctx string, n *yaml.Node, remember string) *Approval {
	n = p.deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if n.Value != "required" {
			p.errf(n, ctx, "unknown value %q (want required, or {required: true, remember: 1h|session|always|once})", n.Value)
			return nil
		}
		return &Approval{Required: true, Remember: remember}
	}
	m, ok := p.mapping(ctx, n, "required", "remember")
	if !ok {
		return nil
	}
	a := &Approval{Remember: remember}
	if e, ok := m["required"]; !ok {
		p.errf(n, ctx, "missing required key \"required\" (want required: true)")
	} else {
		a.Required, _ = p.boolean(ctx+".required", e.val)
	}
	if e, ok := m["remember"]; ok {
		if s, ok := p.remember(ctx+".remember", e.val); ok {
			a.Remember = s
		}
	}
	if !a.Required {
		return nil
	}
	return a
}

// remember reads 1h|session|always|once.
func (p *parser) remember(ctx string, n *yaml.Node) (string, bool) {
	s, ok := p.str(ctx, n)
	if !ok {
		return "", false
	}
	switch s {
	case RememberSession, RememberAlways, RememberOnce:
		return s, true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= time.Second && d <= 366*24*time.Hour {
		return s, true
	}
	p.errf(p.deref(n), ctx, "bad value %q (want session, always, once or a duration such as \"1h\")", s)
	return "", false
}

// unsafePaths reads the unsafe_paths opt-ins.
func (p *parser) unsafePaths(ctx string, n *yaml.Node) UnsafePaths {
	list, nodes, _ := p.strList(ctx, n, " (omit the key to refuse every unsafe path)")
	var u UnsafePaths
	for i, s := range list {
		f := parseUnsafe(s)
		if f == 0 {
			p.errf(nodes[i], ctx+"["+strconv.Itoa(i)+"]", "unknown value %q (want any of %s)", s, strings.Join(unsafeNames[:], ", "))
		}
		u |= f
	}
	return u
}

// PlaceholderPrefix starts a placeholder the agent writes where a secret
// goes: {{airlock:PATH}}.
const PlaceholderPrefix = "{{airlock:"

// ApplyHeaders prepares the agent's request headers h for this rule,
// before the credential is injected: it deletes [Rule.StripAuth] (except,
// on a rule with Inject.Placeholders, a header whose value holds a
// placeholder: the agent put it there for substitution) and sets the
// rule's static headers, only where the agent sent none unless
// HeadersOverride.
func (r *Rule) ApplyHeaders(h http.Header) {
	for _, k := range r.stripAuth {
		if r.Inject.Placeholders && holdsPlaceholder(h[k]) {
			continue
		}
		delete(h, k)
	}
	for k, v := range r.Headers {
		k = http.CanonicalHeaderKey(k)
		if _, sent := h[k]; sent && !r.HeadersOverride {
			continue
		}
		h[k] = []string{v}
	}
}

func holdsPlaceholder(vv []string) bool {
	for _, v := range vv {
		if strings.Contains(v, PlaceholderPrefix) {
			return true
		}
	}
	return false
}
