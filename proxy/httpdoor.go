package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/vault"
)

// servePipeline judges and forwards one request: a MITM'd request inside
// tunnel t, or (t nil) a plain http:// proxy request.
func (s *Server) servePipeline(w http.ResponseWriter, r *http.Request, t *tunnel) {
	st := &pipelineState{ev: event{start: time.Now(), method: r.Method, door: door.Proxy, operation: door.OpProxy}}
	ev, d := &st.ev, &st.d
	if t != nil && t.door != "" {
		ev.door = t.door // a transparent connection's requests
	}
	if e := s.decide(r, t, d, ev); e != nil {
		ev.fail(e)
		e.Write(w)
		s.record(ev)
		return
	}
	d.base = r.Context() // net/http's, on the front door
	if t != nil && t.ctx != nil {
		d.base = t.ctx
	}
	cw := &st.cw
	cw.ResponseWriter = w
	defer func() { // also when the stream is aborted (a panic)
		if !d.detached { // a detached stream's end records it (stream.go)
			s.endPipeline(d, cw)
		}
	}()
	s.relay(cw, r, d)
	if !d.detached && d.aborted {
		// The head is out; only ending the connection tells the agent the
		// body is incomplete (net/http's convention: ErrAbortHandler).
		panic(http.ErrAbortHandler)
	}
}

// endPipeline records a proxied request once its response is over.
func (s *Server) endPipeline(d *decision, cw *countingWriter) {
	ev := d.ev
	if ev.status == 0 {
		ev.status = cw.status
	}
	ev.bytes, ev.aborted = cw.bytes, d.aborted
	s.record(ev)
}

// pipelineState is what one proxied request carries through the
// pipeline, allocated at once: its audit event, its decision and the
// counting writer of its response.
type pipelineState struct {
	ev event
	d  decision
	cw countingWriter
}

// decide identifies the agent and pins the target of a proxied request
// into d, then runs the pipeline (judge).
func (s *Server) decide(r *http.Request, t *tunnel, d *decision, ev *event) *Error {
	d.ev, d.target = ev, r.RequestURI   // judged as the agent sent it (policy.Judge)
	if e := loopDetected(r); e != nil { // Via: airlock (refuse.go)
		return e
	}
	if e := s.target(r, t, d); e != nil {
		return e
	}
	req := door.Request{Door: door.Proxy, Operation: door.OpProxy, Agent: d.agent, Method: r.Method, URL: r.URL}
	ctx := r.Context()
	if t != nil && t.ctx != nil {
		ctx = t.ctx // ends when the agent hangs up (internal/h1/watch.go): an approval hold is left
	}
	return s.judge(ctx, d, req)
}

// target identifies the agent and the destination of r.
func (s *Server) target(r *http.Request, t *tunnel, d *decision) *Error {
	if t != nil {
		d.agent, d.scheme, d.host, d.port = t.agent, t.scheme, t.host, t.port
		d.ev.logHost = t.logHost
		// goproxy-style MITM would route by the inner Host; airlock pins the
		// CONNECT target so an agent cannot have one host's credential sent
		// to another.
		for _, hp := range []string{r.Host, absHost(r)} {
			if hp == "" || hp == t.hostPort || hp == t.host && t.port == defaultPort(t.scheme) {
				continue // already in normal form: no allocation on the common path
			}
			host, port, _ := policy.SplitTarget(hp, defaultPort(t.scheme))
			if host != t.host || port != t.port {
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
		d.ev.reason = s.authFailReason(r) // logged, never sent (agents.go)
		return e
	}
	d.agent, d.scheme = agent, "http"
	host, port, ok := policy.SplitTarget(r.URL.Host, 80)
	if !ok {
		return newError(http.StatusBadRequest, CodeBadRequest, "bad port in "+r.URL.Host, "")
	}
	d.host, d.port = host, port
	return nil
}

func absHost(r *http.Request) string {
	if r.URL.IsAbs() {
		return r.URL.Host
	}
	return ""
}

// Forward sends req, judged by dec (an http_request decision of Judge),
// through the egress pipeline: the rule's injection, the dial guard,
// timeouts and the response observer chain (scrubbing) as for proxied
// requests. The caller reads and closes the body, then calls dec.Done.
func (s *Server) Forward(ctx context.Context, dec *door.Decision, req *http.Request) (*http.Response, error) {
	d, ok := dec.State.(*decision)
	if !ok {
		return nil, errors.New("proxy: Forward needs a decision of this server's Judge")
	}
	out := req.Clone(context.WithValue(ctx, decisionKey{}, d))
	prepareOutbound(out, nil)
	if e := s.admit(out, d); e != nil { // LLM budgets (meter.go)
		return nil, e
	}
	if err := s.rewriteOut(out, d); err != nil {
		d.ev.ticket.Abort()
		return nil, injectError(err)
	}
	resp, err := s.forward.Transport.RoundTrip(out)
	if err != nil {
		d.ev.ticket.Abort()
		return nil, classify(err, d)
	}
	if err := s.observe(resp); err != nil { // the same observers as proxied responses
		resp.Body.Close()
		d.ev.ticket.Abort()
		return nil, classify(err, d)
	}
	d.ev.status = resp.StatusCode
	return resp, nil
}

// Header is the header dec's rule injects with dec's credential: what the
// RPC door's `use http_header` hands out ([headerFor]).
func (s *Server) Header(dec *door.Decision) (name, value string, err error) {
	if dec == nil || dec.Rule == nil || dec.Credential == nil {
		return "", "", newError(http.StatusForbidden, CodeAccessDenied, "no rule injects this credential", "add a rule naming this credential")
	}
	return headerFor(dec.Rule, dec.Credential)
}

// Snapshot is the vault's current data, or nil when sealed.
func (s *Server) Snapshot() *vault.Data {
	if v := s.Vault(); v != nil {
		return v.Snapshot()
	}
	return nil
}
