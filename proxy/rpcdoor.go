package proxy

import (
	"context"
	"github.com/airlock/airlock/proxy/internal/egress"
	"net/http"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// HTTPRequest sends req for agent through the egress pipeline, as the RPC
// door's `use http_request` does: the URL must match a policy rule that
// binds credential for this agent; the rule decides the injection; the dial
// guard, timeouts, audit and metrics apply as for proxied requests.
// Refusals are *Error values.
func (s *Server) HTTPRequest(ctx context.Context, agent, credential string, req *http.Request) (*http.Response, error) {
	ev := &event{start: time.Now(), method: req.Method, door: "rpc"}
	d := &decision{ev: ev, agent: agent, scheme: req.URL.Scheme}
	fail := func(e *Error) (*http.Response, error) {
		ev.fail(e)
		s.record(ev)
		return nil, e
	}
	e := s.rpcTarget(d, req)
	if e == nil {
		e = s.judge(d, req.Method, req.URL.Path)
	}
	if e == nil && (d.rule == nil || d.rule.Credential != credential) {
		e = newError(http.StatusForbidden, CodeAccessDenied,
			"no rule binds credential "+credential+" to "+d.host+" for agent "+agent,
			"add a rule with this host and credential for the agent to the policy")
	}
	if e != nil {
		return fail(e)
	}
	out := req.Clone(context.WithValue(ctx, decisionKey{}, d))
	prepareOutbound(out, nil)
	s.rewriteOut(out, d)
	resp, err := s.forward.Transport.RoundTrip(out)
	if err != nil {
		return fail(classify(err, d))
	}
	if err := s.scrubResponse(resp); err != nil { // the same scrubbing as proxied responses
		resp.Body.Close()
		return fail(classify(err, d))
	}
	ev.status = resp.StatusCode
	s.record(ev)
	return resp, nil
}

func (s *Server) rpcTarget(d *decision, req *http.Request) *Error {
	if d.scheme != "https" && d.scheme != "http" || req.URL.Host == "" {
		return newError(http.StatusBadRequest, CodeBadRequest, "url must be absolute http(s)", "pass a full https:// URL")
	}
	host, port := egress.HostPort(req.URL.Host, defaultPort(d.scheme))
	if port < 0 {
		return newError(http.StatusBadRequest, CodeBadRequest, "bad port in "+req.URL.Host, "")
	}
	d.host, d.port = strings.ToLower(strings.TrimSuffix(host, ".")), port
	return nil
}

// CredentialHeader returns the header the policy's rule for credential
// would inject for agent: what the RPC door's `use http_header` hands out.
func (s *Server) CredentialHeader(agent, credential string) (name, value string, err error) {
	v := s.Vault()
	if v == nil {
		return "", "", vaultLocked()
	}
	for _, r := range s.Policy().Rules {
		if r.Credential != credential || !r.AppliesTo(agent) {
			continue
		}
		cred, err := v.Snapshot().Credential(credential)
		if err != nil {
			return "", "", newError(http.StatusBadGateway, CodeCredentialNotFound, "the vault does not hold "+credential, "")
		}
		if cred.Expired(time.Now()) {
			return "", "", newError(http.StatusForbidden, CodeCredentialExpired, "credential "+credential+" has expired", "")
		}
		return HeaderFor(r, cred)
	}
	return "", "", newError(http.StatusForbidden, CodeAccessDenied,
		"no rule injects "+credential+" for agent "+agent, "add a rule naming this credential")
}

// Snapshot is the vault's current data, or nil when sealed.
func (s *Server) Snapshot() *vault.Data {
	if v := s.Vault(); v != nil {
		return v.Snapshot()
	}
	return nil
}
