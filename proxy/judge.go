package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/vault"
)

// The pipeline. Every operation that touches a credential, whatever door
// it came through, is judged by judge (exported as [Server.Judge]):
//
//	identify agent ▶ normalise target once (policy.SplitTarget, policy.Judge) ▶
//	match rule ▶ rate limit (state store) ▶ report mode ▶ resolve credential
//	(credential source) ▶ decision or typed *Error
//
// and recorded by record (audit.go): one zap line, one hash-chained line,
// the requests and credential-uses counters with door and operation
// labels. Nothing else reads policy rules to decide about a credential.

// decision is the pipeline's verdict on one request, carried in the request
// context to the forwarder.
type decision struct {
	ev     *event
	agent  string
	scheme string
	host   string
	port   int
	rule   *policy.Rule      // nil: unmatched traffic passed through
	grant  *policy.Grant     // the grant of a credential operation; nil: none asked
	cred   *vault.Credential // nil: nothing to inject
	target string            // raw request-target from the proxy door; "": req.URL.RequestURI()
	path   policy.Path       // the judged path and its forwarded form (policy.Judge)
	judged bool              // path holds a judged path (HTTP operations)
	// bodyRefused is the placeholder refusal a streamed request body failed
	// with, if any (placeholder.Sniff); nil: no body watched.
	bodyRefused func() error

	aborted  bool           // the upstream body failed mid-stream
	detached bool           // its stream went on without the handler's goroutine (stream.go)
	pub      *door.Decision // d as doors and observers see it (public), made on demand
	echo     echoes         // secret echoes scrubbed from the response (observe.go)

	base context.Context // parent of the upstream request: ends with the agent
}

type decisionKey struct{}

func decisionFrom(ctx context.Context) *decision {
	d, _ := ctx.Value(decisionKey{}).(*decision)
	return d
}

// Judge runs the pipeline for one operation of a door other than the HTTP
// proxy (which calls the same judge on its own path). On success the
// caller performs the operation and must call Decision.Done once with the
// outcome, which writes the audit line; a refusal is returned as an *Error
// (errcode) and already recorded.
func (s *Server) Judge(ctx context.Context, req door.Request) (*door.Decision, error) {
	ev := &event{start: time.Now(), method: req.Method, door: req.Door, operation: req.Operation}
	d := &decision{ev: ev, agent: req.Agent}
	if e := s.judge(ctx, d, req); e != nil {
		ev.fail(e)
		s.record(ev)
		return nil, e
	}
	pub := d.public()
	pub.OnDone(func(o door.Outcome) { s.finish(ev, o) })
	return pub, nil
}

// finish records the outcome of an operation judged by Judge.
func (s *Server) finish(ev *event, o door.Outcome) {
	if o.Err != nil {
		ev.fail(asError(o.Err))
	}
	if ev.status == 0 {
		ev.status = o.Status
	}
	ev.bytes, ev.aborted = o.Bytes, o.Aborted
	s.record(ev)
}

// judge is the pipeline. d carries the agent (and, from the proxy door, the
// pinned target); req says what is asked.
func (s *Server) judge(ctx context.Context, d *decision, req door.Request) *Error {
	ev := d.ev
	ev.agent = d.agent
	if len(req.Actions) > 0 { // the RPC door's grants, checked before anything about the credential
		ev.credential = req.Credential
		if d.grant = grantFor(s.Policy(), d.agent, req.Credential, req.Actions); d.grant == nil {
			return newError(http.StatusForbidden, CodeAccessDenied,
				"agent "+d.agent+" may not "+req.Actions[0]+" "+req.Credential,
				"add a grant with action "+req.Actions[0]+" for this agent and credential to the policy")
		}
	}
	if req.URL == nil { // an operation on a credential alone (retrieve, sign, ...)
		return s.judgeCredential(ctx, d, req)
	}
	if d.host == "" { // not pinned by a tunnel: the request names its target
		if e := urlTarget(d, req); e != nil {
			return e
		}
	}
	ev.host, ev.port = d.host, d.port
	target := d.target
	if target == "" {
		target = req.URL.RequestURI()
	}
	pol := s.Policy()
	// One normalisation for judging and forwarding: the upstream gets
	// exactly the path the rule was matched on (pth.Forward, see rewriteOut).
	rule, pth, err := pol.Judge(d.agent, req.Method, d.host, d.port, target)
	if err != nil {
		return badPath(err)
	}
	d.path, d.judged, ev.path = pth, true, pth.Judged
	if e := s.judgeRule(ctx, d, pol, rule); e != nil {
		return e
	}
	if req.Credential != "" && (d.rule == nil || d.rule.Credential != req.Credential) {
		// The agent names the credential (rpc http_request): the matching
		// rule must bind exactly that one.
		return newError(http.StatusForbidden, CodeAccessDenied,
			"no rule binds credential "+req.Credential+" to "+d.host+" for agent "+d.agent,
			"add a rule with this host and credential for the agent to the policy")
	}
	return nil
}

// judgeRule applies the matched rule (nil: none) to d.
func (s *Server) judgeRule(ctx context.Context, d *decision, pol *policy.Policy, rule *policy.Rule) *Error {
	ev := d.ev
	if rule == nil {
		if d.scheme == "http" && pol.Egress.Unmatched == policy.ActionTunnel {
			ev.decision = decisionAllow
			return nil
		}
		if pol.Egress.Unmatched == policy.ActionAsk && pol.Egress.Mode != policy.ModeReport { // held for a person (refuse.go)
			if e := s.awaitUnmatched(ctx, d.agent, ev.method, d.host, d.port, ev.path); e != nil {
				return e
			}
			ev.decision = decisionAllow
			return nil
		}
		return s.denyOrReport(d, pol, noMatch(d, pol, d.ev.method)) // report mode: refuse.go
	}
	d.rule, ev.rule = rule, rule.Name
	if needsApproval(rule) && rule.Action != policy.ActionDeny { // held before rate limit and credential (refuse.go)
		if e := s.awaitRule(ctx, d, rule); e != nil {
			return e
		}
	}
	if e := s.rateLimit(d.agent, rule); e != nil { // per agent × rule (refuse.go)
		return e
	}
	switch rule.Action {
	case policy.ActionDeny:
		return s.denyOrReport(d, pol, denied(d.host, rule))
	case policy.ActionInject:
		if d.scheme == "http" && !rule.InsecureHTTP {
			return newError(http.StatusForbidden, CodeAccessDenied,
				"rule "+rule.Name+" does not inject credentials over plain http",
				"use https://, or set insecure_http: true on the rule if the upstream really has no TLS")
		}
		cred, e := s.resolve(ctx, rule.Name, rule.Credential)
		if e != nil {
			return e
		}
		d.cred = cred
		ev.decision, ev.credential, ev.inject = decisionInject, rule.Credential, rule.Inject.Type
	default: // allow, or a tunnel rule met by plain http
		ev.decision = decisionAllow
	}
	return nil
}

// judgeCredential judges an operation on a named credential (the RPC
// door's retrieve, sign, encrypt, decrypt and http_header; the door has
// checked the agent's grant). The rule binding the credential for the
// agent, if any, rate-limits it; http_header needs one (it hands out that
// rule's header). Report mode never hands out a credential the enforced
// policy would refuse: without the credential there is nothing to do.
func (s *Server) judgeCredential(ctx context.Context, d *decision, req door.Request) *Error {
	ev := d.ev
	ev.credential = req.Credential
	rule := bindingRule(s.Policy(), d.agent, req.Credential)
	if rule == nil && req.Operation == door.OpHTTPHeader {
		return newError(http.StatusForbidden, CodeAccessDenied,
			"no rule injects "+req.Credential+" for agent "+d.agent, "add a rule naming this credential")
	}
	if rule != nil {
		d.rule, ev.rule, ev.inject = rule, rule.Name, rule.Inject.Type
		if e := s.rateLimit(d.agent, rule); e != nil {
			return e
		}
	}
	cred, e := s.resolve(ctx, "", req.Credential)
	if e != nil {
		return e
	}
	d.cred = cred
	ev.decision = decisionUse
	if req.Operation == door.OpRetrieve || req.Operation == door.OpHTTPHeader {
		ev.decision = decisionHandOut
	}
	return nil
}

// grantFor is the first grant letting agent perform any of actions on
// credential, or nil.
func grantFor(pol *policy.Policy, agent, credential string, actions []string) *policy.Grant {
	if pol == nil {
		return nil
	}
	for _, a := range actions {
		if g, ok := pol.Allowed(agent, credential, a); ok {
			return g
		}
	}
	return nil
}

// bindingRule is the first rule that injects credential for agent.
func bindingRule(pol *policy.Policy, agent, credential string) *policy.Rule {
	if pol == nil {
		return nil
	}
	for _, r := range pol.Rules {
		if r.Credential == credential && r.AppliesTo(agent) {
			return r
		}
	}
	return nil
}

// urlTarget sets d's destination from an absolute http(s) URL.
func urlTarget(d *decision, req door.Request) *Error {
	u := req.URL
	d.scheme = u.Scheme
	if d.scheme != "https" && d.scheme != "http" || u.Host == "" {
		return newError(http.StatusBadRequest, CodeBadRequest, "url must be absolute http(s)", "pass a full https:// URL")
	}
	host, port, ok := policy.SplitTarget(u.Host, defaultPort(d.scheme))
	if !ok {
		return newError(http.StatusBadRequest, CodeBadRequest, "bad host or port in "+u.Host, "")
	}
	d.host, d.port = host, port
	return nil
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// resolve takes a credential from the credential source (the vault);
// rule names the rule asking, "" for a credential the agent named.
func (s *Server) resolve(ctx context.Context, rule, path string) (*vault.Credential, *Error) {
	cred, err := s.source.Fetch(ctx, path)
	if err != nil {
		return nil, sourceError(rule, path, err)
	}
	cred, e := s.sources.Resolve(ctx, s.Snapshot(), cred) // a reference: its source's value (package source)
	if e != nil {
		return nil, e
	}
	if cred.Expired(time.Now()) {
		return nil, newError(http.StatusForbidden, CodeCredentialExpired,
			"credential "+path+" expired at "+cred.ExpiresAt.UTC().Format(time.RFC3339),
			"store a fresh value with `airlock vault set "+path+" --expires ...`")
	}
	return cred, nil
}

// badPath is the 400 BAD_PATH answer for a path policy.Judge refused.
func badPath(err error) *Error {
	var pe *policy.PathError
	if errors.As(err, &pe) {
		return newError(http.StatusBadRequest, errcode.BadPath, pe.Error(), pe.Hint())
	}
	return newError(http.StatusBadRequest, errcode.BadPath, "path refused: "+err.Error(), "send a normalised path")
}

// noMatch is the ACCESS_DENIED answer when no rule matched d: the host
// has no rule at all, or the nearest rule and why it did not match.
func noMatch(d *decision, pol *policy.Policy, method string) *Error {
	if !d.judged {
		return denied(d.host, nil)
	}
	return newError(http.StatusForbidden, CodeAccessDenied,
		pol.NoMatchDetail(d.agent, method, d.host, d.port, d.path.Judged),
		"add a rule for this agent, method and path to the policy; `airlock policy explain` shows which rule applies")
}
