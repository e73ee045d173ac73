package policy

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // budgets' time zones resolve on hosts without zoneinfo

	"gopkg.in/yaml.v3"
)

// approvalsSection reads approvals: into a, which holds the defaults.
func (p *parser) approvalsSection(n *yaml.Node, a *Approvals) {
	m, ok := p.mapping("approvals", n, "timeout", "webhook", "remember")
	if !ok {
		return
	}
	if e, ok := m["timeout"]; ok {
		if d, ok := p.duration("approvals.timeout", e.val); ok {
			if d < time.Second || d > time.Hour {
				p.errf(p.deref(e.val), "approvals.timeout", "want 1s to 1h (a held request keeps the agent waiting)")
			}
			a.Timeout = d
		}
	}
	if e, ok := m["webhook"]; ok {
		if s, ok := p.str("approvals.webhook", e.val); ok && s != "" {
			if msg := checkWebhook(s); msg != "" {
				p.errf(p.deref(e.val), "approvals.webhook", "%s", msg)
			}
			a.Webhook = s
		}
	}
	if e, ok := m["remember"]; ok {
		if s, ok := p.remember("approvals.remember", e.val); ok {
			a.Remember = s
		}
	}
}

// checkWebhook validates a webhook URL without repeating it: a Slack
// webhook URL is itself a secret.
func checkWebhook(s string) string {
	const want = "want an http:// or https:// URL"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a URL; " + want
	case u.Scheme != "https" && u.Scheme != "http":
		return "scheme must be http or https; " + want
	case u.Hostname() == "":
		return "no host; " + want
	case u.User != nil:
		return "no user:password in the URL; put a token in the path or query"
	}
	return ""
}

var budgetKeys = []string{"name", "scope", "limit", "window", "timezone", "warn_at"}

// budgets walks the budgets list; rules are the parsed rules, which a
// scope's rule must name.
func (p *parser) budgets(n *yaml.Node, rules []*Rule) []Budget {
	n = p.deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "budgets", "want a list, got %s", kind(n))
		return nil
	}
	out := make([]Budget, 0, len(n.Content))
	seen := map[string]int{}
	for i, item := range n.Content {
		ctx := "budgets[" + strconv.Itoa(i) + "]"
		b, ok := p.budget(ctx, item, rules)
		if !ok {
			continue
		}
		if line, dup := seen[b.Name]; dup && b.Name != "" {
			p.errf(p.deref(item), ctx, "duplicate budget name %q (first at line %d)", b.Name, line)
		}
		seen[b.Name] = b.Line
		out = append(out, b)
	}
	return out
}

func (p *parser) budget(ctx string, n *yaml.Node, rules []*Rule) (Budget, bool) {
	m, ok := p.mapping(ctx, n, budgetKeys...)
	if !ok {
		return Budget{}, false
	}
	n = p.deref(n)
	b := Budget{Line: n.Line, Column: n.Column, Window: WindowMonth, Location: time.UTC}
	if e, ok := m["name"]; !ok {
		p.errf(n, ctx, "missing required key \"name\"")
	} else if s, ok := p.str(ctx+".name", e.val); ok {
		if !nameRE.MatchString(s) {
			p.errf(e.val, ctx+".name", "bad budget name %q (letters, digits, \".\", \"_\", \"-\"; at most 64)", s)
		}
		b.Name = s
	}
	if e, ok := m["scope"]; !ok {
		p.errf(n, ctx, "missing required key \"scope\" (any of agent, rule, credential)")
	} else {
		p.budgetScope(ctx+".scope", e.val, &b, rules)
	}
	if e, ok := m["limit"]; !ok {
		p.errf(n, ctx, "missing required key \"limit\" (want {usd: N} or {tokens: N})")
	} else {
		p.budgetLimit(ctx+".limit", e.val, &b)
	}
	p.budgetWindow(ctx, m, &b)
	if e, ok := m["warn_at"]; ok {
		if f, ok := p.number(ctx+".warn_at", e.val); ok {
			if f <= 0 || f >= 1 {
				p.errf(p.deref(e.val), ctx+".warn_at", "want a fraction between 0 and 1, e.g. 0.8")
			}
			b.WarnAt = f
		}
	}
	return b, true
}

func (p *parser) budgetScope(ctx string, n *yaml.Node, b *Budget, rules []*Rule) {
	m, ok := p.mapping(ctx, n, "agent", "rule", "credential")
	if !ok {
		return
	}
	if len(m) == 0 {
		p.errf(p.deref(n), ctx, "empty scope (want any of agent, rule, credential)")
	}
	if e, ok := m["agent"]; ok {
		if s, ok := p.str(ctx+".agent", e.val); ok {
			if !agentRE.MatchString(s) {
				p.errf(e.val, ctx+".agent", "bad agent name %q", s)
			}
			b.Agent, b.pos.agent = s, posOf(p.deref(e.val))
		}
	}
	if e, ok := m["rule"]; ok {
		if s, ok := p.str(ctx+".rule", e.val); ok {
			known := false
			for _, r := range rules {
				known = known || r.Name == s
			}
			if !known {
				p.errf(e.val, ctx+".rule", "no rule named %q%s", s, suggest(s, ruleNames(rules)))
			}
			b.Rule, b.pos.rule = s, posOf(p.deref(e.val))
		}
	}
	if e, ok := m["credential"]; ok {
		if s, ok := p.str(ctx+".credential", e.val); ok {
			if !credentialRE.MatchString(s) || len(s) > 256 {
				p.errf(e.val, ctx+".credential", "bad credential path %q (e.g. \"openai/api-key\")", s)
			}
			b.Credential, b.pos.credential = s, posOf(p.deref(e.val))
		}
	}
}

func ruleNames(rules []*Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.Name
	}
	return out
}

func (p *parser) budgetLimit(ctx string, n *yaml.Node, b *Budget) {
	m, ok := p.mapping(ctx, n, "usd", "tokens")
	if !ok {
		return
	}
	eu, hasUSD := m["usd"]
	et, hasTokens := m["tokens"]
	switch {
	case hasUSD && hasTokens:
		p.errf(et.key, ctx, "give usd or tokens, not both (two budgets can cap both)")
	case !hasUSD && !hasTokens:
		p.errf(p.deref(n), ctx, "want {usd: N} or {tokens: N}")
	case hasUSD:
		if f, ok := p.number(ctx+".usd", eu.val); ok {
			if f <= 0 || f > 1e9 {
				p.errf(p.deref(eu.val), ctx+".usd", "want a positive amount of US dollars")
			}
			b.USD = f
		}
	default:
		if v, ok := p.integer(ctx+".tokens", et.val); ok {
			if v < 1 {
				p.errf(p.deref(et.val), ctx+".tokens", "want a positive number of tokens")
			}
			b.Tokens = int64(v)
		}
	}
}

func (p *parser) budgetWindow(ctx string, m map[string]entry, b *Budget) {
	if e, ok := m["window"]; ok {
		if s, ok := p.str(ctx+".window", e.val); ok {
			switch s {
			case WindowHour, WindowDay, WindowMonth, WindowRolling:
				b.Window = s
			default:
				p.errf(e.val, ctx+".window", "unknown window %q (want hour, day, month or 24h)", s)
			}
		}
	}
	e, ok := m["timezone"]
	if !ok {
		return
	}
	s, ok := p.str(ctx+".timezone", e.val)
	if !ok {
		return
	}
	if b.Window == WindowRolling {
		p.errf(e.key, ctx+".timezone", "has no effect on a rolling 24h window")
	}
	loc, err := time.LoadLocation(s)
	if err != nil || s == "" || strings.EqualFold(s, "local") {
		p.errf(e.val, ctx+".timezone", "unknown time zone %q (want an IANA name such as \"UTC\" or \"Europe/Zurich\")", s)
		return
	}
	b.Location = loc
}

// prices reads model → {input, output, cached_input} in USD per 1M tokens.
func (p *parser) prices(n *yaml.Node) map[string]Price {
	n = p.deref(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, "prices", "want a mapping of model: {input: N, output: N}, got %s", kind(n))
		return nil
	}
	out := make(map[string]Price, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := p.deref(n.Content[i])
		model, ok := p.str("prices", k)
		if !ok {
			continue
		}
		ctx := "prices[" + strconv.Quote(model) + "]"
		if _, dup := out[model]; dup {
			p.errf(k, ctx, "model priced twice")
			continue
		}
		if model == "" || len(model) > 128 || strings.ContainsAny(model, " \t\r\n{}\"") {
			p.errf(k, ctx, "bad model name (want the API's model id, e.g. \"gpt-4o\")")
		}
		out[model] = p.price(ctx, n.Content[i+1])
	}
	return out
}

func (p *parser) price(ctx string, n *yaml.Node) Price {
	m, ok := p.mapping(ctx, n, "input", "output", "cached_input")
	var pr Price
	if !ok {
		return pr
	}
	get := func(key string, dst *float64, required bool) {
		e, ok := m[key]
		if !ok {
			if required {
				p.errf(p.deref(n), ctx, "missing required key %q (USD per 1M tokens)", key)
			}
			return
		}
		if f, ok := p.number(ctx+"."+key, e.val); ok {
			if f < 0 || f > 1e6 {
				p.errf(p.deref(e.val), ctx+"."+key, "want USD per 1M tokens, 0 or more")
			}
			*dst = f
		}
	}
	get("input", &pr.Input, true)
	get("output", &pr.Output, true)
	get("cached_input", &pr.CachedInput, false)
	return pr
}

// number returns a YAML integer or float.
func (p *parser) number(ctx string, n *yaml.Node) (float64, bool) {
	n = p.deref(n)
	var f float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") ||
		n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.errf(n, ctx, "want a number, got %s", kind(n))
		return 0, false
	}
	return f, true
}
