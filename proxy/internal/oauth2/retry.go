package oauth2

import (
	"io"
	"net/http"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// Retry wraps the upstream round tripper: when an oauth2 rule's upstream
// answers 401, the token that was refused is dropped and the request is
// sent once more with a fresh one, if its body can be replayed (no body,
// or one buffered by the injector).
type Retry struct {
	Base   http.RoundTripper
	Tokens *Cache
	// Judged returns the rule and credential req was judged with (nil,
	// nil: no credential).
	Judged func(req *http.Request) (*policy.Rule, *vault.Credential)
}

// RoundTrip is http.RoundTripper.
func (r *Retry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.Base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	rule, cred := r.Judged(req)
	if rule == nil || cred == nil || rule.Inject.Type != policy.InjectOAuth2 {
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
	name, _ := TokenHeader(rule, "")
	r.Tokens.Invalidate(rule, cred, req.Header.Get(name))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err := r.Tokens.Inject(retry, rule, cred); err != nil {
		return nil, err
	}
	return r.Base.RoundTrip(retry)
}
