package rpc

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/errcode"
)

// refusingBackend wraps fakeBackend with Forward refusing as told.
type refusingBackend struct {
	*fakeBackend
	err error
}

func (b refusingBackend) Forward(context.Context, *door.Decision, *http.Request) (*http.Response, error) {
	return nil, b.err
}

type codeOnly struct{ code string }

func (e codeOnly) Error() string { return "refused" }
func (e codeOnly) Code() string  { return e.code }

func TestBackendErrors(t *testing.T) {
	cases := map[string]struct {
		err  error
		code string
	}{
		"ErrorCode method":    {&codedError{"EGRESS_BLOCKED", "10.0.0.1 is private"}, CodeEgressBlocked},
		"Code method":         {codeOnly{"RATE_LIMITED"}, CodeRateLimited},
		"wrapped":             {errors.Join(errors.New("ctx"), &codedError{"CREDENTIAL_EXPIRED", "x"}), CodeCredentialExpired},
		"bad request renamed": {&codedError{"BAD_REQUEST", "x"}, CodeInvalidRequest},
		"plain error":         {errors.New("dial tcp: refused"), CodeUpstreamError},
		"secret in message":   {&codedError{"UPSTREAM_ERROR", "GET https://h/?key=" + tokenSecret + ": refused"}, CodeUpstreamError},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.srv.b = refusingBackend{h.b, tc.err}
			fc := h.bot()
			e := fc.fail("use", useParamsFor(fc, "api/token", "http_request",
				map[string]any{"url": h.upstream.URL + "/v1/x"}), tc.code)
			if strings.Contains(e.Message, tokenSecret) {
				t.Fatalf("secret in error: %q", e.Message)
			}
			h.assertNoSecretsLogged()
		})
	}
}

type panickingBackend struct{ *fakeBackend }

func (panickingBackend) Forward(context.Context, *door.Decision, *http.Request) (*http.Response, error) {
	panic("boom " + tokenSecret)
}

func TestHandlerPanicIsContained(t *testing.T) {
	h := newHarness(t, Options{})
	h.srv.b = panickingBackend{h.b}
	fc := h.bot()
	fc.fail("use", useParamsFor(fc, "api/token", "http_request", map[string]any{"url": h.upstream.URL + "/v1/x"}), CodeInternal)
	fc.ok("list", fc.with(nil), nil) // the connection survives
	h.assertNoSecretsLogged()
}

// The pipeline's refusals cross the Backend seam with their code and
// suggestion (errcode.Coded, errcode.Suggested), and the codes the RPC
// door does not produce itself are counted as themselves, not as
// INTERNAL_ERROR.
func TestPipelineCodesAndSuggestionsSurvive(t *testing.T) {
	cases := map[string]*errcode.Error{
		"misdirected":        errcode.New(421, errcode.Misdirected, "request for a inside a tunnel to b", "open a separate CONNECT to each host"),
		"credential invalid": errcode.New(502, errcode.CredentialInvalid, "bad token document", "store it again with `airlock vault set-oauth2`"),
		"loop":               errcode.New(508, errcode.LoopDetected, "the request already passed through airlock", "send it to the real upstream"),
		"budget":             errcode.New(429, errcode.BudgetExceeded, "budget team is spent", "wait for the reset"),
	}
	for name, pe := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.srv.b = refusingBackend{h.b, pe}
			fc := h.bot()
			e := fc.fail("use", useParamsFor(fc, "api/token", "http_request",
				map[string]any{"url": h.upstream.URL + "/v1/x"}), pe.Code)
			if e.Suggestion != pe.Suggestion {
				t.Fatalf("suggestion %q, want %q", e.Suggestion, pe.Suggestion)
			}
			if got := metricValue(t, h, "bot", "use", pe.Code); got != 1 {
				t.Fatalf("airlock_rpc_requests_total{code=%s} = %v, want 1", pe.Code, got)
			}
		})
	}
}
