package proxy

import (
	"context"
	"github.com/airlock/airlock/proxy/internal/egress"
	"net/http"
	"strings"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// decision is the pipeline's verdict on one request, carried in the request
// context to the forwarder.
type decision struct {
	ev     *event
	agent  string
	scheme string
	host   string
	port   int
	rule   *policy.Rule      // nil: unmatched traffic passed through
	cred   *vault.Credential // nil: nothing to inject

	injectErr error // set by the forwarder when injection failed
	aborted   bool  // the upstream body failed mid-stream

	base context.Context // parent of the upstream request: ends with the agent
}

type decisionKey struct{}

func decisionFrom(ctx context.Context) *decision {
	d, _ := ctx.Value(decisionKey{}).(*decision)
	return d
}

// servePipeline judges and forwards one request: a MITM'd request inside
// tunnel t, or (t nil) a plain http:// proxy request.
func (s *Server) servePipeline(w http.ResponseWriter, r *http.Request, t *tunnel) {
	ev := &event{start: time.Now(), method: r.Method}
	d, e := s.decide(r, t, ev)
	if e != nil {
		ev.fail(e)
		e.Write(w)
		s.record(ev)
		return
	}
	d.base = r.Context() // net/http's, on the front door
	if t != nil && t.ctx != nil {
		d.base = t.ctx
	}
	cw := &countingWriter{ResponseWriter: w}
	defer func() { // also when the stream is aborted
		if ev.status == 0 {
			ev.status = cw.status
		}
		ev.bytes, ev.aborted = cw.bytes, d.aborted
		s.record(ev)
	}()
	s.relay(cw, r, d)
	if d.aborted {
		// The head is out; only ending the connection tells the agent the
		// body is incomplete (net/http's convention: ErrAbortHandler).
		panic(http.ErrAbortHandler)
	}
}

// decide runs the pipeline up to injection: identify the agent, check the
// target, match the rule and resolve the credential.
func (s *Server) decide(r *http.Request, t *tunnel, ev *event) (*decision, *Error) {
	d := &decision{ev: ev}
	if e := loopDetected(r); e != nil { // Via: airlock (hygiene.go)
		return nil, e
	}
	if e := s.target(r, t, d); e != nil {
		return nil, e
	}
	if e := s.judge(d, r.Method, r.URL.Path); e != nil {
		return nil, e
	}
	return d, nil
}

// judge matches the policy rule for d's agent and destination and resolves
// the credential. Both doors call it: nothing else decides whether a
// credential is used.
func (s *Server) judge(d *decision, method, rawPath string) *Error {
	ev := d.ev
	ev.agent, ev.host, ev.port = d.agent, d.host, d.port
	ev.path = policy.CleanPath(rawPath)
	if hasDotSegment(rawPath) {
		// The rule is judged on the cleaned path; an upstream that resolved
		// "/a/../b" differently would see a path nobody judged.
		return newError(http.StatusBadRequest, CodeBadRequest, "path with . or .. segments",
			"send the normalised path")
	}
	pol := s.Policy()
	rule := pol.Match(d.agent, method, d.host, d.port, ev.path)
	if rule == nil {
		if d.scheme == "http" && pol.Egress.Unmatched == policy.ActionTunnel {
			ev.decision = decisionAllow
			return nil
		}
		return s.denyOrReport(d, pol, denied(d.host, nil)) // report mode: report.go
	}
	d.rule, ev.rule = rule, rule.Name
	if e := s.rateLimit(d.agent, rule); e != nil { // per agent × rule (ratelimit.go)
		return e
	}
	switch rule.Action {
	case policy.ActionDeny:
		return s.denyOrReport(d, pol, denied(d.host, rule))
	case policy.ActionInject:
		if e := s.resolve(d, rule); e != nil {
			return e
		}
		ev.decision, ev.credential, ev.inject = decisionInject, rule.Credential, rule.Inject.Type
	default: // allow, or a tunnel rule met by plain http
		ev.decision = decisionAllow
	}
	return nil
}

// target identifies the agent and the destination of r.
func (s *Server) target(r *http.Request, t *tunnel, d *decision) *Error {
	if t != nil {
		d.agent, d.scheme, d.host, d.port = t.agent, t.scheme, t.host, t.port
		// goproxy-style MITM would route by the inner Host; airlock pins the
		// CONNECT target so an agent cannot have one host's credential sent
		// to another.
		for _, hp := range []string{r.Host, absHost(r)} {
			if hp == "" {
				continue
			}
			host, port := egress.HostPort(hp, defaultPort(t.scheme))
			if !strings.EqualFold(strings.TrimSuffix(host, "."), t.host) || port != t.port {
				return newError(http.StatusMisdirectedRequest, CodeMisdirected,
					"request for "+hp+" inside a tunnel to "+t.host+":"+itoa(t.port),
					"open a separate CONNECT to each host")
			}
		}
		return nil
	}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		return newError(http.StatusBadRequest, CodeBadRequest, "this is airlock's proxy port, not a web server",
			"send requests through it as a proxy: HTTPS_PROXY=http://AGENT:TOKEN@host:port")
	}
	if r.URL.Scheme != "http" {
		return newError(http.StatusBadRequest, CodeBadRequest, "only http:// URLs can be sent without CONNECT",
			"use HTTPS_PROXY so the client tunnels https:// requests with CONNECT")
	}
	agent, e := s.authenticate(r)
	if e != nil {
		return e
	}
	d.agent, d.scheme = agent, "http"
	d.host, d.port = egress.HostPort(r.URL.Host, 80)
	d.host = strings.ToLower(strings.TrimSuffix(d.host, "."))
	if d.port < 0 {
		return newError(http.StatusBadRequest, CodeBadRequest, "bad port in "+r.URL.Host, "")
	}
	return nil
}

func absHost(r *http.Request) string {
	if r.URL.IsAbs() {
		return r.URL.Host
	}
	return ""
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// resolve takes the rule's credential from the vault.
func (s *Server) resolve(d *decision, rule *policy.Rule) *Error {
	if d.scheme == "http" && !rule.InsecureHTTP {
		return newError(http.StatusForbidden, CodeAccessDenied,
			"rule "+rule.Name+" does not inject credentials over plain http",
			"use https://, or set insecure_http: true on the rule if the upstream really has no TLS")
	}
	v := s.Vault()
	if v == nil {
		return vaultLocked()
	}
	cred, err := v.Snapshot().Credential(rule.Credential)
	if err != nil {
		return newError(http.StatusBadGateway, CodeCredentialNotFound,
			"rule "+rule.Name+" names credential "+rule.Credential+", which the vault does not hold",
			"store it with `airlock vault set "+rule.Credential+"`")
	}
	if cred.Expired(time.Now()) {
		return newError(http.StatusForbidden, CodeCredentialExpired,
			"credential "+rule.Credential+" expired at "+cred.ExpiresAt.UTC().Format(time.RFC3339),
			"store a fresh value with `airlock vault set "+rule.Credential+" --expires ...`")
	}
	d.cred = cred
	return nil
}

// hasDotSegment reports whether p has a "." or ".." segment.
func hasDotSegment(p string) bool {
	for p != "" {
		var seg string
		seg, p, _ = strings.Cut(p, "/")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
