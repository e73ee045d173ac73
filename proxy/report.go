package proxy

import (
	"net"
	"net/http"

	"github.com/airlock/airlock/policy"
	"github.com/elazarl/goproxy"
)

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
