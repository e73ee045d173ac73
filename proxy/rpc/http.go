package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/vault"
)

type httpParams struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	HeaderType string            `json:"header_type"`
	HeaderName string            `json:"header_name"`
}

// responseReserve is frame room kept for the JSON around an upstream body.
const responseReserve = 64 << 10

// httpRequest sends the agent's request through the backend's egress
// pipeline, which picks the rule, injects and audits. A header_type that
// disagrees with the rule's injection is refused, never obeyed.
func httpRequest(s *Server, ctx context.Context, c *call, cred *vault.Credential, raw json.RawMessage) (any, *Error) {
	var p httpParams
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	req, e := buildRequest(ctx, &p)
	if e != nil {
		return nil, e
	}
	c.host = req.URL.Host
	path := cred.Path
	cred, _, e = s.credential(ctx, c, door.Request{Operation: door.OpHTTPRequest, Method: req.Method, URL: req.URL,
		Credential: path}, httpRequestActions...)
	if e != nil {
		return nil, e
	}
	if e := s.checkHeaderType(c.agent, path, &p, c.dec.Rule); e != nil {
		return nil, e
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	resp, err := s.b.Forward(ctx, c.dec, req.WithContext(ctx))
	if err != nil {
		return nil, backendError(err, scrubber(cred))
	}
	defer resp.Body.Close()
	c.status = resp.StatusCode
	limit := int64(s.opts.MaxFrame - responseReserve)
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, newError(CodeUpstreamError, "reading the upstream response failed", "retry the request")
	}
	if int64(len(body)) > limit {
		return nil, newError(CodeUpstreamError, "the upstream response is larger than the frame limit",
			"use the HTTP proxy door for large responses")
	}
	headers := make(map[string]string, len(resp.Header))
	for k, vs := range resp.Header {
		headers[k] = string(scrubBytes([]byte(strings.Join(vs, ", ")), cred))
	}
	return map[string]any{
		"status":  resp.StatusCode,
		"headers": headers,
		"body":    string(scrubBytes(body, cred)),
	}, nil
}

// buildRequest validates the agent's parameters into a request.
func buildRequest(ctx context.Context, p *httpParams) (*http.Request, *Error) {
	method := strings.ToUpper(p.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !validToken(method) {
		return nil, invalid("method is not a valid HTTP method")
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, invalid("url must be an absolute http(s) URL without user info")
	}
	var body io.Reader
	if p.Body != "" {
		body = strings.NewReader(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, invalid("url or method is malformed")
	}
	for k, v := range p.Headers {
		if !validToken(k) || strings.ContainsAny(v, "\r\n\x00") {
			return nil, invalid("header " + strconv.Quote(k) + " is malformed")
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) {
			return false
		}
	}
	return true
}

var errConflict = errors.New("header_type conflicts with the policy")

// checkHeaderType refuses a header_type (and header_name) that differs from
// how rule injects credential. With no header_type, or no rule binding the
// credential (the backend refuses those itself), there is nothing to check.
func (s *Server) checkHeaderType(agent, credential string, p *httpParams, r *policy.Rule) *Error {
	if p.HeaderType == "" || r == nil || r.Credential != credential {
		return nil
	}
	if headerTypeMatches(p.HeaderType, p.HeaderName, r.Inject) {
		return nil
	}
	e := invalid(errConflict.Error() + ": the rule " + r.Name + " injects " + credential + " as " + r.Inject.Type)
	e.Suggestion = "omit header_type: airlock injects the credential as the policy says"
	e.Context["header_type"], e.Context["inject"] = p.HeaderType, r.Inject.Type
	return e
}

func headerTypeMatches(typ, name string, in policy.Inject) bool {
	switch strings.ToLower(typ) {
	case "bearer":
		return in.Type == policy.InjectBearer || in.Type == policy.InjectOAuth2
	case "basic":
		return in.Type == policy.InjectBasic
	case "api_key":
		return in.Type == policy.InjectAPIKey && (name == "" || strings.EqualFold(name, in.Header))
	case "custom":
		return in.Type == policy.InjectCustom && strings.EqualFold(name, in.Header)
	}
	return false
}

type headerParams struct {
	HeaderType string `json:"header_type"`
	HeaderName string `json:"header_name"`
}

// httpHeader hands out the header the policy's rule would inject.
func httpHeader(s *Server, _ context.Context, c *call, cred *vault.Credential, raw json.RawMessage) (any, *Error) {
	var p headerParams
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	hp := &httpParams{HeaderType: p.HeaderType, HeaderName: p.HeaderName}
	if e := s.checkHeaderType(c.agent, cred.Path, hp, c.dec.Rule); e != nil {
		return nil, e
	}
	name, value, err := s.b.Header(c.dec)
	if err != nil {
		return nil, backendError(err, scrubber(cred))
	}
	c.sensitive = true
	return map[string]any{"header_name": name, "header_value": value}, nil
}
