package errcode

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

type coded struct{ code, sug string }

func (c coded) Error() string           { return "refused" }
func (c coded) ErrorCode() string       { return c.code }
func (c coded) ErrorSuggestion() string { return c.sug }

func TestAs(t *testing.T) {
	own := New(http.StatusMisdirectedRequest, Misdirected, "m", "s")
	cases := map[string]struct {
		err        error
		status     int
		code, sugg string
	}{
		"own error":           {fmt.Errorf("wrapped: %w", own), 421, Misdirected, "s"},
		"coded error":         {coded{BudgetExceeded, "wait"}, 429, BudgetExceeded, "wait"},
		"unknown code":        {coded{"MADE_UP", "x"}, 502, UpstreamError, "check that the upstream is reachable and its TLS certificate is valid"},
		"plain error":         {errors.New("dial tcp: refused"), 502, UpstreamError, "check that the upstream is reachable and its TLS certificate is valid"},
		"rpc code of errcode": {coded{LeaseExpired, ""}, 403, LeaseExpired, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := As(tc.err)
			if e.Status != tc.status || e.Code != tc.code || e.Suggestion != tc.sugg {
				t.Fatalf("As = %d %s %q, want %d %s %q", e.Status, e.Code, e.Suggestion, tc.status, tc.code, tc.sugg)
			}
		})
	}
}

func TestEveryCodeHasAStatus(t *testing.T) {
	for _, c := range []string{AuthFailed, AccessDenied, CredentialNotFound, CredentialExpired, CredentialInvalid,
		VaultLocked, RateLimited, EgressBlocked, UpstreamError, BadRequest, Misdirected, LoopDetected, TooManyConns,
		LeaseExpired, SessionExpired, InvalidRequest, Internal, BudgetExceeded, ApprovalDenied, ApprovalTimeout,
		PlaceholderNotAllowed, CredentialSourceUnavailable, BadPath} {
		if !Known(c) || Status[c] < 400 {
			t.Errorf("%s: status %d", c, Status[c])
		}
	}
	if Known("OK") {
		t.Error("OK is not an error code")
	}
}

func TestResponseShape(t *testing.T) {
	e := New(http.StatusTooManyRequests, RateLimited, "slow down", "retry in 3s")
	e.RetryAfter = 3
	resp := e.Response(nil)
	if resp.StatusCode != 429 || resp.Header.Get("X-Airlock-Error") != RateLimited || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	if got := string(e.Body()); got != `{"error":{"code":"RATE_LIMITED","message":"slow down","suggestion":"retry in 3s"}}`+"\n" {
		t.Fatalf("body %s", got)
	}
}
