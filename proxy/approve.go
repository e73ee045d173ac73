package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/errcode"
)

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
// (the console's live feed), its time in Line.At (Line.Time is formatted
// only when an audit file is configured). f must not block. nil removes
// the tap.
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
