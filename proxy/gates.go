package proxy

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/time/rate"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/errcode"
)

// The pipeline's gates between the rule match and the credential (judge
// calls them in this order): approval, rate limit, report mode.

// Approvals: a request to a rule with `approval: required`, or one no rule
// matches under `egress.unmatched: ask`, is held by the approval queue
// (package approval) after the rule match and before rate limit, budget
// and any credential read. The agent's context is the wait's: an agent
// that gives up leaves the entry (the last one cancels it).

// Decisions of approval audit lines: "approval_" + the queue's result.
const decisionApprovalPrefix = "approval_"

// SetApprovals installs the approval queue (nil: requests that need an
// approval are refused, fail closed). Safe while serving.
func (s *Server) SetApprovals(q *approval.Queue) { s.approvals.Store(q) }

// Approvals returns the approval queue, or nil.
func (s *Server) Approvals() *approval.Queue { return s.approvals.Load() }

// SetAuditTap makes f see every audit line as the audit file would get it
// (the console's live feed). f must not block. nil removes the tap.
func (s *Server) SetAuditTap(f func(audit.Line)) {
	if f == nil {
		s.auditTap.Store(nil)
		return
	}
	s.auditTap.Store(&f)
}

// needsApproval reports whether rule holds its requests for a person.
func needsApproval(rule *policy.Rule) bool {
	return rule != nil && rule.Approval != nil && rule.Approval.Required
}

// awaitRule holds a request matched by a rule with `approval: required`.
func (s *Server) awaitRule(ctx context.Context, d *decision, rule *policy.Rule) *Error {
	return s.await(ctx, approval.Request{Agent: d.agent, Rule: rule.Name, Method: d.ev.method,
		Host: net.JoinHostPort(d.host, itoa(d.port)), Path: d.ev.path, Remember: rule.Approval.Remember})
}

// awaitUnmatched holds a request (or a CONNECT: method CONNECT, no path)
// no rule matched, under egress.unmatched: ask. The approval is keyed by
// host:port, so approving one port of a host does not open the others.
func (s *Server) awaitUnmatched(ctx context.Context, agent, method, host string, port int, path string) *Error {
	return s.await(ctx, approval.Request{Agent: agent, Method: method, Host: net.JoinHostPort(host, itoa(port)),
		Path: path, Unmatched: true})
}

func (s *Server) await(ctx context.Context, req approval.Request) *Error {
	q := s.approvals.Load()
	if q == nil {
		return newError(http.StatusForbidden, errcode.ApprovalDenied,
			"this request needs a person's approval and no approval queue runs",
			"run `airlock serve` (it starts the approval queue), or remove approval: required / egress.unmatched: ask from the policy")
	}
	if _, err := q.Wait(ctx, req); err != nil {
		code, detail, hint, ok := approval.Refusal(err)
		if !ok { // cancelled, or the store failed: fail closed
			return newError(http.StatusForbidden, errcode.ApprovalDenied,
				"no approval: "+err.Error(), "retry the request; `airlock approvals` lists held requests")
		}
		return newError(http.StatusForbidden, code, detail, hint)
	}
	return nil
}

// ApprovalOutcome writes the audit line of one approval entry's end
// (approved, denied, timeout, cancelled) through the one audit path (zap
// line, hash chain, console feed, requests metric), naming the approver.
// It is the queue's Config.OnOutcome.
func (s *Server) ApprovalOutcome(o approval.Outcome) {
	p := o.Pending
	ev := &event{start: time.Now(), agent: p.Agent, rule: p.Rule, method: p.Method, path: p.Path,
		decision: decisionApprovalPrefix + o.Result, approver: o.Decision.Approver}
	ev.host, ev.port = splitHostPortLoose(p.Host)
	switch o.Result {
	case approval.ResultDenied:
		ev.code, ev.status = errcode.ApprovalDenied, http.StatusForbidden
	case approval.ResultTimeout:
		ev.code, ev.status = errcode.ApprovalTimeout, http.StatusForbidden
	}
	s.record(ev)
}

// splitHostPortLoose splits "host:port" when it carries a port.
func splitHostPortLoose(hp string) (string, int) {
	host, port, ok := policy.SplitTarget(hp, 0)
	if !ok || port == 0 {
		return hp, 0
	}
	return host, port
}

// Rate limits: one token bucket per (agent, rule name), kept in the state
// store (package state). Buckets outlive policy reloads: a rule whose rate
// changed gets its bucket's limit and burst updated in place, so a reload
// never hands every agent a fresh burst.

// limitOf converts a rule's rate limit to a token rate and burst.
func limitOf(rl *policy.RateLimit) (rate.Limit, int) {
	burst := rl.Burst
	if burst <= 0 {
		burst = rl.Count
	}
	if rl.Per <= 0 {
		return rate.Inf, burst
	}
	return rate.Limit(float64(rl.Count) / rl.Per.Seconds()), burst
}

// bucketKey names the bucket of agent under rule in the state store.
func bucketKey(agent, rule string) string { return "ratelimit\x00" + agent + "\x00" + rule }

// rateLimit is the pipeline's rate-limit step, after a rule matched. A
// state store that cannot answer fails closed (RATE_LIMITED, retry 1 s).
func (s *Server) rateLimit(agent string, rule *policy.Rule) *Error {
	if rule.Action == policy.ActionDeny || rule.RateLimit == nil || rule.RateLimit.Count <= 0 {
		return nil
	}
	limit, burst := limitOf(rule.RateLimit)
	ok, wait, err := s.state.Allow(context.Background(), bucketKey(agent, rule.Name), limit, burst)
	if ok && err == nil {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	if err != nil {
		secs = 1
	}
	rl := rule.RateLimit
	e := newError(http.StatusTooManyRequests, CodeRateLimited,
		"rule "+rule.Name+" allows "+strconv.Itoa(rl.Count)+" requests per "+rl.Per.String()+" for agent "+agent,
		"retry after "+strconv.Itoa(secs)+"s, or raise the rule's rate_limit/burst")
	e.RetryAfter = secs
	return e
}

// Rollout mode: with `egress.mode: report` a request the policy would deny
// is forwarded WITHOUT any credential and recorded with decision
// would_deny (and the code it would have been refused with), so a team can
// put an existing fleet behind airlock and read what would break before
// enforcing. Refusals that are not policy decisions (authentication,
// missing or expired credentials, the dial guard) are enforced as always.

// decisionWouldDeny records a request report mode let through.
const decisionWouldDeny = "would_deny"

// reporting reports whether pol is in report mode.
func reporting(pol *policy.Policy) bool { return pol != nil && pol.Egress.Mode == policy.ModeReport }

// denyOrReport returns e (a policy denial) in enforce mode; in report mode
// it marks d as would_deny, forwarded without a credential, and returns nil.
func (s *Server) denyOrReport(d *decision, pol *policy.Policy, e *Error) *Error {
	if !reporting(pol) {
		return e
	}
	d.cred = nil
	d.ev.decision, d.ev.code = decisionWouldDeny, e.Code
	d.ev.credential, d.ev.inject = "", ""
	return nil
}

// reportConnect handles a CONNECT the policy denies: in report mode it is
// recorded as would_deny and tunnelled untouched (no MITM, so no
// credential); ok is false in enforce mode.
func (s *Server) reportConnect(ev *event, host string, port int) (*goproxy.ConnectAction, string, bool) {
	if !reporting(s.Policy()) {
		return nil, "", false
	}
	ev.decision, ev.code, ev.status = decisionWouldDeny, CodeAccessDenied, http.StatusOK
	s.record(ev)
	return &goproxy.ConnectAction{Action: goproxy.ConnectAccept}, net.JoinHostPort(host, itoa(port)), true
}
