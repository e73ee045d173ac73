package proxy

// Refusals: the error type and codes both doors answer with (package
// errcode); the gates judge passes a request through after its rule
// matched, each of which can refuse it (approval, rate limit, and report
// mode, which turns a policy denial into would_deny); loops through
// airlock; placeholders where no rule binds them; credential sources that
// fail; and denials answered inside the tunnel where the agent can read
// them.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/time/rate"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/internal/placeholder"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/vault"
)

// Error is the refusal type of both doors ([errcode.Error]).
type Error = errcode.Error

// Error codes, re-exported from [errcode] for existing callers.
const (
	CodeAuthFailed         = errcode.AuthFailed
	CodeAccessDenied       = errcode.AccessDenied
	CodeCredentialNotFound = errcode.CredentialNotFound
	CodeCredentialExpired  = errcode.CredentialExpired
	CodeCredentialInvalid  = errcode.CredentialInvalid
	CodeVaultLocked        = errcode.VaultLocked
	CodeRateLimited        = errcode.RateLimited
	CodeEgressBlocked      = errcode.EgressBlocked
	CodeUpstreamError      = errcode.UpstreamError
	CodeBadRequest         = errcode.BadRequest
	CodeMisdirected        = errcode.Misdirected
	CodeLoopDetected       = errcode.LoopDetected
	CodeTooManyConns       = errcode.TooManyConns
)

var (
	newError = errcode.New
	asError  = errcode.As
)

// Approvals: a request to a rule with `approval: required`, or one no rule
// matches under `egress.unmatched: ask`, is held by the approval queue
// (package approval) after the rule match and before rate limit, budget
// and any credential read. The agent's context is the wait's: an agent
// that gives up leaves the entry (the last one cancels it).

// Decisions of approval audit lines: "approval_" + the queue's result.
const decisionApprovalPrefix = "approval_"

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

// placeholderError is the 403 for a placeholder refused or impossible
// (package placeholder).
func placeholderError(err error) *Error { return placeholder.Refusal(err) }

// viaAirlock is the Via value airlock adds to every forwarded request; an
// inbound request carrying it has been through airlock already.
const viaAirlock = "1.1 airlock"

// outboundHygiene marks the outbound request with Via (loop detection) and,
// when a credential is injected, asks for identity encoding so the response
// scrubber sees plaintext (observe.go explains what happens otherwise) and
// strips the agent's Range and If-Range, so an upstream that echoes the
// secret cannot be made to hand it out a few bytes per response
// (scrub.StripRange; a 206 that comes anyway is refused in scrubResponse).
// Proxy-* and hop-by-hop headers are already gone: rewrite deletes Proxy-*
// and prepareOutbound (relay.go; the ReverseProxy for upgrades) removes the
// hop-by-hop set (Connection and the headers it names, Keep-Alive, Te,
// Trailer, Transfer-Encoding, Upgrade).
func outboundHygiene(out *http.Request, d *decision) {
	out.Header.Add("Via", viaAirlock)
	if d.cred != nil {
		out.Header.Set("Accept-Encoding", "identity")
		scrub.StripRange(out.Header)
	}
}

// loopDetected refuses a request that already passed through an airlock.
func loopDetected(r *http.Request) *Error {
	for _, v := range r.Header.Values("Via") {
		for _, hop := range strings.Split(v, ",") {
			f := strings.Fields(hop)
			if len(f) >= 2 && strings.EqualFold(f[1], "airlock") {
				return loopError("the request already passed through airlock (Via: airlock)")
			}
		}
	}
	return nil
}

func loopError(msg string) *Error {
	return newError(http.StatusLoopDetected, CodeLoopDetected, msg,
		"airlock does not proxy to itself; send the request to the real upstream")
}

// partialError refuses a partial answer (scrub.ErrPartial) to a request
// with an injected credential (scrubResponse, observe.go).
func partialError(err error) *Error {
	return newError(http.StatusBadGateway, CodeUpstreamError, "refused the upstream's partial response: "+err.Error(),
		"airlock strips Range on requests it injects; the upstream answered with part of the content anyway")
}

// A CONNECT to a host no rule allows is not refused at CONNECT time, where
// clients show only "tunnel failed, response 403": airlock completes the
// CONNECT, finishes TLS with a leaf minted for that host (so a denied host
// costs a leaf in the bounded cache) and answers the first request inside
// with the JSON error, as path denials are answered. Nothing is dialled.
// 407 stays at CONNECT: the client has no identity yet.

// denyTimeout bounds each step of a denied tunnel (handshake, first head).
const denyTimeout = 10 * time.Second

// denyInsideTunnel records the refusal and returns the CONNECT action that
// answers e inside the tunnel (charged to the agent's connection budget).
func (s *Server) denyInsideTunnel(ctx *goproxy.ProxyCtx, ev *event, host string, e *Error) *goproxy.ConnectAction {
	ev.fail(e)
	s.record(ev)
	return s.holdMITM(ctx, ev, &goproxy.ConnectAction{Action: goproxy.ConnectHijack,
		Hijack: func(_ *http.Request, c net.Conn, _ *goproxy.ProxyCtx) { s.answerDenied(c, host, e) }})
}

// answerDenied serves a denied tunnel: 200 to the CONNECT, then
// answerDeniedInside.
func (s *Server) answerDenied(c net.Conn, host string, e *Error) {
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = c.Close()
		return
	}
	s.answerDeniedInside(c, host, e)
}

// answerDeniedInside finishes TLS with a leaf for host (or reads plain
// HTTP), answers the first request with the JSON error and closes c: a
// denied CONNECT after its 200, a denied transparent connection at once.
func (s *Server) answerDeniedInside(c net.Conn, host string, e *Error) {
	defer c.Close()
	first, pc, err := sniff(c, denyTimeout)
	if err != nil {
		return
	}
	inner := pc
	if first == 0x16 {
		cfg := agentTLSConfig(s.certs, host, pc.RemoteAddr()).Clone()
		cfg.NextProtos = []string{"http/1.1"} // the refusal is one HTTP/1.1 answer; an h2 client would read garbage
		tc := tls.Server(pc, cfg)
		hctx, cancel := context.WithTimeout(context.Background(), denyTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return
		}
		inner = tc
	}
	_ = inner.SetDeadline(time.Now().Add(denyTimeout))
	br := bufio.NewReader(io.LimitReader(inner, int64(s.front.MaxHeaderBytes)+4096))
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	resp := e.Response(req)
	_ = resp.Write(inner)
	if cw, ok := inner.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// sourceError maps a Source error onto the refusal the agent gets; rule is
// the rule asking ("" when the agent named the credential).
func sourceError(rule, path string, err error) *Error {
	switch {
	case errors.Is(err, ErrSealed):
		return vaultLocked()
	case errors.Is(err, vault.ErrNotFound):
		msg := "the vault does not hold " + path
		if rule != "" {
			msg = "rule " + rule + " names credential " + path + ", which the vault does not hold"
		}
		return newError(http.StatusBadGateway, CodeCredentialNotFound, msg, "store it with `airlock vault set "+path+"`")
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
		"the credential source of "+path+" did not answer",
		"check the credential source; airlock fails closed until it answers")
}
