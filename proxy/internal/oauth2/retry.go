package proxy

import (
	"io"
	"net/http"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/oauth2"
)

// retryUnauthorized wraps the upstream round tripper: when an oauth2
// rule's upstream answers 401, the token that was refused is dropped and
// the request is sent once more with a fresh one, if its body can be
// replayed (no body, or one buffered by the injector).
type retryUnauthorized struct {
	base http.RoundTripper
	s    *Server
}

func (r *retryUnauthorized) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	d := decisionFrom(req.Context())
	if d == nil || d.rule == nil || d.cred == nil || d.rule.Inject.Type != policy.InjectOAuth2 {
		return resp, nil
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody && req.GetBody == nil {
		return resp, nil
	}
	retry := req.Clone(req.Context())
	if hasBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	name, _ := oauth2.TokenHeader(d.rule, "")
	r.s.tokens.Invalidate(d.rule, d.cred, req.Header.Get(name))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err := r.s.tokens.Inject(retry, d.rule, d.cred); err != nil {
		return nil, err
	}
	return r.base.RoundTrip(retry)
}
