package policy

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Explanation says what the policy does with one request. It never holds a
// secret: only the credential's path.
type Explanation struct {
	Agent, Method string
	Scheme, Host  string
	Port          int
	Path          string // judged (normalised) path, as rules matched it
	Forward       string // the escaped path airlock would forward

	Action     string // final verdict: inject, allow, tunnel or deny
	Rule       string // matching rule name; "" when none matched
	File       string
	Line, Col  int    // the rule's position
	Credential string // vault path, for inject
	Inject     Inject // how, for inject
	Reason     string // one sentence on how the verdict was reached
	Report     bool   // egress.mode is report: a deny is forwarded without credentials and logged
	Err        error  // the URL could not be judged (Action is deny); wraps ErrBadPath for a refused path

	// Of the matching rule:
	Approval         *Approval   // nil: no approval needed
	Usage            string      // meter (UsageNone when unmetered)
	DefaultMaxTokens int         // reserved when a request names no max_tokens
	Budgets          []string    // names of the budgets this request counts against
	UnsafePaths      UnsafePaths // path features the rule opts into
	StripAuth        []string    // agent auth headers removed before injection
	Nearest          string      // when no rule matched: the nearest rule and how it differs
}

// Explain judges METHOD rawURL for agent the way the proxy would: CONNECT
// first for https, then the request. rawURL may omit the scheme (https).
func (p *Policy) Explain(agent, method, rawURL string) Explanation {
	ex := Explanation{Agent: agent, Method: strings.ToUpper(method), Action: ActionDeny}
	if p == nil {
		ex.Err = fmt.Errorf("no policy loaded")
		return ex
	}
	ex.File, ex.Report = p.File, p.Egress.Mode == ModeReport
	target, err := ex.target(rawURL)
	if err != nil {
		ex.Err, ex.Reason = err, err.Error()
		return ex
	}
	if ex.Scheme == "https" {
		action, rule := p.ConnectDecision(agent, ex.Host, ex.Port)
		switch {
		case action == ActionTunnel || (action == ActionDeny && rule != nil):
			ex.setRule(rule, action)
			if rule != nil && rule.Action == ActionTunnel {
				ex.Approval = rule.Approval
			}
			ex.Reason = "decided at CONNECT: " + describeConnect(action, rule)
			return ex
		case rule == nil && action == ActionDeny:
			ex.Reason = "no rule names this host for this agent; egress.unmatched is deny"
			ex.Nearest = p.nearestDetail(agent, ex.Method, ex.Host, ex.Port, "")
			return ex
		case rule == nil && action == ActionAsk:
			ex.Action = ActionAsk
			ex.Reason = "no rule names this host for this agent; egress.unmatched is ask, so the CONNECT is held for a person's approval"
			return ex
		}
	}
	p.explainRequest(&ex, target)
	return ex
}

// explainRequest judges the request itself (inside the MITM, or plain http).
func (p *Policy) explainRequest(ex *Explanation, target string) {
	r, pth, err := p.Judge(ex.Agent, ex.Method, ex.Host, ex.Port, target)
	ex.Path, ex.Forward = pth.Judged, pth.Forward
	if err != nil {
		ex.Err, ex.Reason = err, "refused with 400 BAD_PATH: "+err.Error()
		if r != nil {
			ex.Rule, ex.Line, ex.Col = r.Name, r.Line, r.Column
		}
		return
	}
	if r == nil {
		switch {
		case ex.Scheme == "http" && p.Egress.Unmatched == ActionTunnel:
			ex.Action, ex.Reason = ActionAllow, "no rule matches; egress.unmatched is tunnel, so plain http is forwarded without a credential"
		case p.Egress.Unmatched == ActionAsk:
			ex.Action, ex.Reason = ActionAsk, "no rule matches this agent, method and path; egress.unmatched is ask, so a person is asked to approve it"
		default:
			ex.Reason = "no rule matches this agent, method and path"
		}
		ex.Nearest = p.nearestDetail(ex.Agent, ex.Method, ex.Host, ex.Port, ex.Path)
		return
	}
	ex.setRule(r, r.Action)
	p.explainExtras(ex, r)
	switch {
	case r.Action == ActionTunnel:
		ex.Action, ex.Reason = ActionAllow, "tunnel rule met by plain http: forwarded without a credential"
	case r.Action == ActionInject && ex.Scheme == "http" && !r.InsecureHTTP:
		ex.Action, ex.Reason = ActionDeny, "rule injects a credential but the URL is plain http and insecure_http is false"
	default:
		ex.Reason = "first matching rule"
	}
}

// explainExtras fills in approval, metering, budgets and path opt-ins.
func (p *Policy) explainExtras(ex *Explanation, r *Rule) {
	ex.Approval, ex.Usage, ex.DefaultMaxTokens = r.Approval, r.Usage, r.DefaultMaxTokens
	ex.UnsafePaths, ex.StripAuth = r.UnsafePaths, r.StripAuth()
	for i := range p.Budgets {
		if b := &p.Budgets[i]; r.Action == ActionInject || r.Action == ActionAllow {
			if b.Applies(ex.Agent, r.Name, r.Credential) {
				ex.Budgets = append(ex.Budgets, b.Name)
			}
		}
	}
}

func (ex *Explanation) setRule(r *Rule, action string) {
	ex.Action = action
	if r == nil {
		return
	}
	ex.Rule, ex.Line, ex.Col = r.Name, r.Line, r.Column
	if r.Action == ActionInject {
		ex.Credential, ex.Inject = r.Credential, r.Inject
	}
}

func describeConnect(action string, r *Rule) string {
	if r == nil {
		return "no rule names this host; egress.unmatched is " + action
	}
	return "rule " + r.Name + " " + action + "s the whole connection"
}

// target fills scheme, host and port from rawURL and returns its
// request-target (the path as typed, still escaped).
func (ex *Explanation) target(rawURL string) (string, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("bad URL: %w", err)
	}
	ex.Scheme = strings.ToLower(u.Scheme)
	def := map[string]int{"https": 443, "http": 80}[ex.Scheme]
	if def == 0 {
		return "", fmt.Errorf("bad URL: scheme %q (want http or https)", u.Scheme)
	}
	ex.Host, ex.Port = strings.ToLower(u.Hostname()), def
	if ex.Host == "" {
		return "", fmt.Errorf("bad URL: no host")
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad URL: port %q", ps)
		}
		ex.Port = n
	}
	if ex.Method == "" {
		ex.Method = "GET"
	}
	// The path as typed: url.Parse has decoded it, and "%2F" must not
	// become "/" before it is judged.
	rest := rawURL[strings.Index(rawURL, "://")+3:]
	if i := strings.IndexAny(rest, "/?#"); i >= 0 && rest[i] == '/' {
		return rest[i:], nil
	}
	return "/", nil
}

// String is the human form printed by "airlock policy explain".
func (ex Explanation) String() string {
	var b strings.Builder
	target := ex.Scheme + "://" + net.JoinHostPort(ex.Host, strconv.Itoa(ex.Port)) + ex.Path
	fmt.Fprintf(&b, "request:    agent %s  %s %s\n", orDefault(ex.Agent, "(any)"), ex.Method, target)
	if ex.Err != nil {
		fmt.Fprintf(&b, "error:      %v\n", ex.Err)
	}
	rule := "(none)"
	if ex.Rule != "" {
		rule = fmt.Sprintf("%s (%s:%d:%d)", ex.Rule, ex.File, ex.Line, ex.Col)
	}
	fmt.Fprintf(&b, "rule:       %s\naction:     %s\n", rule, ex.Action)
	if ex.Credential != "" {
		fmt.Fprintf(&b, "credential: %s\ninjection:  %s\n", ex.Credential, describeInject(ex.Inject))
	}
	ex.writeExtras(&b)
	fmt.Fprintf(&b, "why:        %s\n", ex.Reason)
	if ex.Nearest != "" {
		fmt.Fprintf(&b, "nearest:    %s\n", ex.Nearest)
	}
	if ex.Report && ex.Action == ActionDeny {
		b.WriteString("mode:       report: this request would be forwarded without credentials and logged as would_deny\n")
	}
	return b.String()
}

// writeExtras prints the judged path and the rule's approval, metering,
// budgets, path opt-ins and stripped headers.
func (ex Explanation) writeExtras(b *strings.Builder) {
	if ex.Path != "" {
		fwd := ""
		if ex.Forward != ex.Path {
			fwd = " (forwarded as " + ex.Forward + ")"
		}
		fmt.Fprintf(b, "path:       %s%s\n", ex.Path, fwd)
	}
	if ex.Rule == "" || ex.Err != nil {
		return
	}
	if ex.Approval != nil {
		fmt.Fprintf(b, "approval:   required; an approval is remembered %s\n", describeRemember(ex.Approval.Remember))
	}
	if ex.Usage != "" && ex.Usage != UsageNone {
		fmt.Fprintf(b, "usage:      metered as %s; %d tokens reserved when a request names no max_tokens\n", ex.Usage, ex.DefaultMaxTokens)
	}
	if len(ex.Budgets) > 0 {
		fmt.Fprintf(b, "budgets:    %s\n", strings.Join(ex.Budgets, ", "))
	}
	if ex.UnsafePaths != 0 {
		fmt.Fprintf(b, "unsafe:     paths with %s accepted (unsafe_paths)\n", ex.UnsafePaths)
	}
	if len(ex.StripAuth) > 0 {
		fmt.Fprintf(b, "strips:     %s from the agent's request\n", strings.Join(ex.StripAuth, ", "))
	}
}

func describeRemember(r string) string {
	switch r {
	case RememberSession:
		return "until airlock serve restarts"
	case RememberAlways:
		return "for good"
	case RememberOnce:
		return "for one request only"
	}
	return "for " + r
}

func describeInject(in Inject) string {
	switch in.Type {
	case InjectQuery:
		return "query parameter " + in.Param
	case InjectBasic:
		if in.Username != "" {
			return "basic, user " + in.Username + ", header " + in.Header
		}
		return "basic (user:password from the credential), header " + in.Header
	case InjectSigV4:
		return "aws_sigv4 signature, region " + orDefault(in.Region, "(inferred from host)") + ", service " + orDefault(in.Service, "(inferred from host)")
	}
	s := in.Type + ", header " + in.Header
	if in.Format != "" {
		s += ", format " + strconv.Quote(in.Format)
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
