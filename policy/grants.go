package policy

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
)

// grants walks the grants list.
func (p *parser) grants(n *yaml.Node) []*Grant {
	n = p.deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "grants", "want a list, got %s", kind(n))
		return nil
	}
	out := make([]*Grant, 0, len(n.Content))
	for i, item := range n.Content {
		if g := p.grant("grants["+strconv.Itoa(i)+"]", item); g != nil {
			out = append(out, g)
		}
	}
	return out
}

// grant walks one grant.
func (p *parser) grant(ctx string, n *yaml.Node) *Grant {
	m, ok := p.mapping(ctx, n, "agents", "credentials", "actions", "max_ttl")
	if !ok {
		return nil
	}
	n = p.deref(n)
	g := &Grant{Line: n.Line, Column: n.Column, MaxTTL: DefaultMaxTTL}
	if e, ok := m["agents"]; ok {
		g.Agents, g.pos.agents = p.agents(ctx+".agents", e.val)
	}
	if e, ok := m["credentials"]; !ok {
		p.errf(n, ctx, "missing required key \"credentials\" (\"*\" means every credential)")
	} else {
		p.grantCredentials(ctx+".credentials", e.val, g)
	}
	if e, ok := m["actions"]; !ok {
		p.errf(n, ctx, "missing required key \"actions\" (any of %s)", strings.Join(grantActions, ", "))
	} else {
		list, nodes, _ := p.strList(ctx+".actions", e.val, "")
		for i, a := range list {
			if !contains(grantActions, a) {
				p.errf(nodes[i], ctx+".actions["+strconv.Itoa(i)+"]", "unknown action %q (want any of %s)", a, strings.Join(grantActions, ", "))
			}
			g.Actions, g.actions = append(g.Actions, a), g.actions|grantBits(a)
		}
	}
	if e, ok := m["max_ttl"]; ok {
		g.MaxTTL = p.ttl(ctx+".max_ttl", e.val)
	}
	return g
}

func (p *parser) grantCredentials(ctx string, n *yaml.Node, g *Grant) {
	list, nodes, _ := p.strList(ctx, n, " (\"*\" means every credential)")
	for i, s := range list {
		if s == "*" {
			g.Credentials, g.creds = append(g.Credentials, s), append(g.creds, glob{})
			g.pos.creds = append(g.pos.creds, posOf(nodes[i]))
			continue
		}
		gl, msg := compileGlob(s, false)
		if msg == "" && !credentialRE.MatchString(strings.ReplaceAll(s, "*", "x")) {
			msg = "want a credential path or glob such as \"openai/*\""
		}
		if msg != "" {
			p.errf(nodes[i], ctx+"["+strconv.Itoa(i)+"]", "bad credential glob %q: %s", s, msg)
			continue
		}
		g.Credentials, g.creds = append(g.Credentials, s), append(g.creds, gl)
		g.pos.creds = append(g.pos.creds, posOf(nodes[i]))
	}
}

// ttl reads max_ttl: integer seconds or a duration string.
func (p *parser) ttl(ctx string, n *yaml.Node) time.Duration {
	n = p.deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		secs, ok := p.integer(ctx, n)
		if ok && (secs < 1 || secs > 366*24*3600) {
			p.errf(n, ctx, "max_ttl must be between 1 second and a year")
		}
		return time.Duration(secs) * time.Second
	}
	d, ok := p.duration(ctx, n)
	if ok && (d < time.Second || d > 366*24*time.Hour) {
		p.errf(n, ctx, "max_ttl must be between 1 second and a year")
	}
	return d
}

// Allowed returns the first grant letting agent perform action on
// credential. action is a grant action or "http_request"; "use" in a grant
// covers sign, encrypt, decrypt and http_request but not retrieve or
// http_header. Unknown actions are never allowed.
func (p *Policy) Allowed(agent, credential, action string) (*Grant, bool) {
	bit := actionBit(action)
	if p == nil || bit == 0 || credential == "" {
		return nil, false
	}
	for _, g := range p.Grants {
		if g.actions&bit != 0 && g.appliesTo(agent) && g.matchCredential(credential) {
			return g, true
		}
	}
	return nil, false
}

func (g *Grant) appliesTo(agent string) bool {
	return len(g.Agents) == 0 || contains(g.Agents, agent)
}

func (g *Grant) matchCredential(c string) bool {
	for i := range g.creds {
		if g.creds[i].segs == nil || g.creds[i].match(c, false) {
			return true
		}
	}
	return false
}

// Limit is the steady rate as a token-bucket limit.
func (rl *RateLimit) Limit() rate.Limit {
	if rl == nil || rl.Count <= 0 || rl.Per <= 0 {
		return rate.Inf
	}
	return rate.Limit(float64(rl.Count) / rl.Per.Seconds())
}

// String returns the limit as written, e.g. "60/m".
func (rl *RateLimit) String() string {
	if rl == nil {
		return "none"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[rl.Per]
	return strconv.Itoa(rl.Count) + "/" + unit
}

// RuleNames returns the rule names in file order.
func (p *Policy) RuleNames() []string {
	names := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		names[i] = r.Name
	}
	return names
}

// Credentials returns the distinct credential paths rules name, in file
// order.
func (p *Policy) Credentials() []string {
	var out []string
	for _, r := range p.Rules {
		if r.Credential != "" && !contains(out, r.Credential) {
			out = append(out, r.Credential)
		}
	}
	return out
}
