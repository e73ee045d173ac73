package policy

import (
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var ruleKeys = []string{"name", "agents", "host", "methods", "paths", "credential", "action",
	"insecure_http", "rate_limit", "burst", "timeout", "inject", "headers",
	"usage", "default_max_tokens", "approval", "unsafe_paths", "headers_override", "keep_agent_auth"}

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	agentRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	credentialRE = regexp.MustCompile(`^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*(/[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*)*$`)
)

// rules walks the rules list.
func (p *parser) rules(n *yaml.Node) []*Rule {
	n = p.deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "rules", "want a list, got %s", kind(n))
		return nil
	}
	seen := map[string]int{}
	out := make([]*Rule, 0, len(n.Content))
	for i, item := range n.Content {
		ctx := "rules[" + strconv.Itoa(i) + "]"
		r := p.rule(ctx, item)
		if r == nil {
			continue
		}
		if r.Name != "" {
			if line, dup := seen[r.Name]; dup {
				p.errf(p.deref(item), ctx, "duplicate rule name %q (first at line %d)", r.Name, line)
			} else {
				seen[r.Name] = r.Line
			}
		}
		out = append(out, r)
	}
	return out
}

// rule walks one rule and checks that its keys agree with each other.
func (p *parser) rule(ctx string, n *yaml.Node) *Rule {
	m, ok := p.mapping(ctx, n, ruleKeys...)
	if !ok {
		return nil
	}
	n = p.deref(n)
	r := &Rule{Line: n.Line, Column: n.Column, Timeout: DefaultTimeout}
	p.ruleIdentity(ctx, n, m, r)
	p.ruleMatchers(ctx, m, r)
	p.ruleAction(ctx, m, r)
	p.ruleLimits(ctx, m, r)
	if r.Action == ActionDeny {
		r.paths = append(r.paths, trimmedVariants(r.Paths)...)
	}
	if e, ok := m["headers"]; ok {
		r.Headers = p.headers(ctx+".headers", e.val, r)
	}
	p.ruleExtras(ctx, m, r, p.approvals)
	return r
}

// ruleIdentity reads name and agents.
func (p *parser) ruleIdentity(ctx string, n *yaml.Node, m map[string]entry, r *Rule) {
	if e, ok := m["name"]; !ok {
		p.errf(n, ctx, "missing required key \"name\"")
	} else if s, ok := p.str(ctx+".name", e.val); ok {
		if !nameRE.MatchString(s) {
			p.errf(e.val, ctx+".name", "bad rule name %q (letters, digits, \".\", \"_\", \"-\"; at most 64)", s)
		}
		r.Name = s
	}
	if e, ok := m["agents"]; ok {
		r.Agents, r.pos.agents = p.agents(ctx+".agents", e.val)
	}
	if e, ok := m["host"]; !ok {
		p.errf(n, ctx, "missing required key \"host\"")
	} else if s, ok := p.str(ctx+".host", e.val); ok {
		hp, display, port, msg := parseHost(s)
		if msg != "" {
			p.errf(e.val, ctx+".host", "bad host %q: %s", s, msg)
		}
		r.host, r.Host, r.Port = hp, display, port
	}
}

// agents reads a non-empty list of agent names, with their positions.
func (p *parser) agents(ctx string, n *yaml.Node) ([]string, []pos) {
	list, nodes, _ := p.strList(ctx, n, " (omit the key to mean every agent)")
	ps := make([]pos, len(nodes))
	for i, a := range list {
		if !agentRE.MatchString(a) {
			p.errf(nodes[i], ctx+"["+strconv.Itoa(i)+"]", "bad agent name %q", a)
		}
		ps[i] = posOf(nodes[i])
	}
	return list, ps
}

// ruleMatchers reads methods and paths.
func (p *parser) ruleMatchers(ctx string, m map[string]entry, r *Rule) {
	if e, ok := m["methods"]; ok {
		list, nodes, _ := p.strList(ctx+".methods", e.val, " (omit the key to mean every method)")
		for i, s := range list {
			up := strings.ToUpper(s)
			bit := methodBit(up)
			if bit == 0 {
				p.errf(nodes[i], ctx+".methods["+strconv.Itoa(i)+"]",
					"unknown method %q (want one of %s)", s, strings.Join(knownMethods, ", "))
			}
			r.Methods, r.methods = append(r.Methods, up), r.methods|bit
		}
	}
	if e, ok := m["paths"]; ok {
		list, nodes, _ := p.strList(ctx+".paths", e.val, " (omit the key to mean every path)")
		for i, s := range list {
			g, msg := compilePathGlob(s)
			if msg != "" {
				p.errf(nodes[i], ctx+".paths["+strconv.Itoa(i)+"]", "bad path %q: %s", s, msg)
				continue
			}
			r.Paths, r.paths = append(r.Paths, s), append(r.paths, g...)
		}
	}
}

// ruleLimits reads rate_limit, burst and timeout.
func (p *parser) ruleLimits(ctx string, m map[string]entry, r *Rule) {
	if e, ok := m["rate_limit"]; ok {
		if s, ok := p.str(ctx+".rate_limit", e.val); ok {
			rl, msg := parseRate(s)
			if msg != "" {
				p.errf(e.val, ctx+".rate_limit", "bad rate %q: %s", s, msg)
			}
			r.RateLimit = rl
		}
	}
	if e, ok := m["burst"]; ok {
		b, ok := p.integer(ctx+".burst", e.val)
		switch {
		case !ok:
		case b < 1:
			p.errf(e.val, ctx+".burst", "burst must be at least 1")
		case r.RateLimit == nil:
			if _, has := m["rate_limit"]; !has {
				p.errf(e.key, ctx+".burst", "burst needs rate_limit")
			}
		default:
			r.RateLimit.Burst = b
		}
	}
	if e, ok := m["timeout"]; ok {
		if d, ok := p.duration(ctx+".timeout", e.val); ok {
			r.Timeout = d
		}
	}
}
