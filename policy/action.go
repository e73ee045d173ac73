package policy

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// ruleAction reads credential, action, inject and insecure_http and checks
// they agree: tunnel and deny carry no credential, injection or static
// headers; tunnel has no methods or paths (it is decided at CONNECT time).
func (p *parser) ruleAction(ctx string, m map[string]entry, r *Rule) {
	if e, ok := m["credential"]; ok {
		if s, ok := p.str(ctx+".credential", e.val); ok {
			if !credentialRE.MatchString(s) || len(s) > 256 {
				p.errf(e.val, ctx+".credential", "bad credential path %q (e.g. \"openai/api-key\")", s)
			}
			r.Credential, r.pos.credential = s, posOf(p.deref(e.val))
		}
	}
	r.Action = ActionAllow
	if r.Credential != "" {
		r.Action = ActionInject
	}
	actNode := (*yaml.Node)(nil)
	if e, ok := m["action"]; ok {
		actNode = e.val
		if s, ok := p.str(ctx+".action", e.val); ok {
			switch s {
			case ActionInject, ActionAllow, ActionTunnel, ActionDeny:
				r.Action = s
			default:
				p.errf(e.val, ctx+".action", "unknown action %q (want inject, allow, tunnel or deny)", s)
			}
		}
	}
	if e, ok := m["insecure_http"]; ok {
		r.InsecureHTTP, _ = p.boolean(ctx+".insecure_http", e.val)
	}
	p.checkAction(ctx, m, actNode, r)
	if e, ok := m["inject"]; ok && r.Credential != "" {
		r.Inject = p.inject(ctx+".inject", e.val, r.Host)
	} else if r.Credential != "" {
		r.Inject = Inject{Type: InjectBearer, Header: "Authorization"}
	}
}

// checkAction reports keys that contradict the rule's action.
func (p *parser) checkAction(ctx string, m map[string]entry, actNode *yaml.Node, r *Rule) {
	at := func(key string) *yaml.Node { return m[key].key }
	has := func(key string) bool { _, ok := m[key]; return ok }
	switch r.Action {
	case ActionTunnel, ActionDeny:
		for _, k := range []string{"credential", "inject", "headers", "insecure_http"} {
			if has(k) {
				p.errf(at(k), ctx+"."+k, "not allowed with action %s", r.Action)
			}
		}
		if r.Action == ActionTunnel {
			for _, k := range []string{"methods", "paths"} {
				if has(k) {
					p.errf(at(k), ctx+"."+k, "not allowed with action tunnel: a tunnel is decided at CONNECT time, before any request is seen")
				}
			}
		}
		if r.Action == ActionDeny {
			for _, k := range []string{"rate_limit", "burst", "timeout"} {
				if has(k) {
					p.errf(at(k), ctx+"."+k, "not allowed with action deny")
				}
			}
		}
	case ActionInject:
		if !has("credential") {
			p.errf(actNode, ctx+".action", "action inject needs a credential")
		}
	case ActionAllow:
		if r.Credential != "" {
			p.errf(actNode, ctx+".action", "action allow forwards without a credential: drop credential or use action inject")
		}
		for _, k := range []string{"inject", "insecure_http"} {
			if has(k) {
				p.errf(at(k), ctx+"."+k, "needs a credential")
			}
		}
	}
}

var injectKeys = []string{"type", "header", "format", "param", "username", "region", "service", "placeholders"}

// injectAllowed lists the optional keys each injection type takes.
var injectAllowed = map[string][]string{
	InjectBearer: {"format"},
	InjectAPIKey: {"header", "format"},
	InjectBasic:  {"username"},
	InjectCustom: {"header", "format"},
	InjectQuery:  {"param"},
	InjectOAuth2: {"header", "format"},
	InjectSigV4:  {"region", "service"},
	// InjectPlaceholder takes none: the agent writes where the secret goes.
	InjectPlaceholder: {},
}

// inject reads the inject block and fills in defaults.
func (p *parser) inject(ctx string, n *yaml.Node, host string) Inject {
	m, ok := p.mapping(ctx, n, injectKeys...)
	in := Inject{Type: InjectBearer}
	if !ok {
		return in
	}
	if e, ok := m["type"]; ok {
		if s, ok := p.str(ctx+".type", e.val); ok {
			if _, known := injectAllowed[s]; !known {
				p.errf(e.val, ctx+".type", "unknown inject type %q (want bearer, api_key, basic, custom, query, oauth2, aws_sigv4 or placeholder)", s)
				return in
			}
			in.Type = s
		}
	}
	in.Placeholders = in.Type == InjectPlaceholder
	if e, ok := m["placeholders"]; ok {
		if b, ok := p.boolean(ctx+".placeholders", e.val); ok {
			if !b && in.Type == InjectPlaceholder {
				p.errf(e.val, ctx+".placeholders", "inject type placeholder always substitutes placeholders")
			}
			in.Placeholders = in.Placeholders || b
		}
	}
	vals := map[string]string{}
	for _, k := range injectKeys[1 : len(injectKeys)-1] {
		e, ok := m[k]
		if !ok {
			continue
		}
		if !contains(injectAllowed[in.Type], k) {
			p.errf(e.key, ctx+"."+k, "not used by inject type %s%s", in.Type, injectHint(in.Type, k))
			continue
		}
		if s, ok := p.str(ctx+"."+k, e.val); ok {
			if msg := checkInjectValue(k, s); msg != "" {
				p.errf(e.val, ctx+"."+k, "%s", msg)
			}
			vals[k] = s
		}
	}
	in.Header, in.Format, in.Param = vals["header"], vals["format"], vals["param"]
	in.Username, in.Region, in.Service = vals["username"], vals["region"], vals["service"]
	p.injectRequired(ctx, n, &in, host)
	return in
}

func injectHint(typ, key string) string {
	if key == "header" {
		return " (use type custom to choose the header)"
	}
	if key == "format" && typ == InjectBasic {
		return " (basic builds \"Basic base64(user:secret)\")"
	}
	return ""
}

// injectRequired checks required keys and applies defaults.
func (p *parser) injectRequired(ctx string, n *yaml.Node, in *Inject, host string) {
	switch in.Type {
	case InjectCustom:
		if in.Header == "" {
			p.errf(p.deref(n), ctx, "inject type custom needs header")
		}
	case InjectQuery:
		if in.Param == "" {
			p.errf(p.deref(n), ctx, "inject type query needs param")
		}
	case InjectAPIKey:
		if in.Header == "" {
			in.Header = DefaultAPIKeyHdr
		}
	case InjectBearer, InjectBasic, InjectOAuth2:
		if in.Header == "" {
			in.Header = "Authorization"
		}
	case InjectSigV4:
		if (in.Region == "" || in.Service == "") && !strings.HasSuffix(host, ".amazonaws.com") {
			p.errf(p.deref(n), ctx, "aws_sigv4 needs region and service unless host is *.amazonaws.com")
		}
	}
}

// checkInjectValue validates one inject value by key.
func checkInjectValue(key, s string) string {
	switch key {
	case "header":
		return checkHeaderName(s)
	case "format":
		if !strings.Contains(s, "{secret}") {
			return "format must contain {secret}"
		}
		if !validHeaderText(s) {
			return "format contains control characters"
		}
	case "param":
		if s == "" || !validHeaderText(s) {
			return "param must be a non-empty name without control characters"
		}
	case "username":
		if strings.Contains(s, ":") || !validHeaderText(s) {
			return "username may not contain \":\" or control characters"
		}
	case "region", "service":
		if !awsNameRE.MatchString(s) {
			return "want lower-case letters, digits and \"-\", e.g. \"us-east-1\""
		}
	}
	return ""
}
