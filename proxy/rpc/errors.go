package rpc

import (
	"errors"
	"strconv"

	"github.com/airlock/airlock/proxy/errcode"
)

// Error codes sent to clients (package errcode holds them all). The SDKs
// map the first seven onto typed exceptions; the others become their base
// VaultError.
const (
	CodeAuthFailed         = errcode.AuthFailed
	CodeAccessDenied       = errcode.AccessDenied
	CodeCredentialNotFound = errcode.CredentialNotFound
	CodeVaultLocked        = errcode.VaultLocked
	CodeLeaseExpired       = errcode.LeaseExpired
	CodeRateLimited        = errcode.RateLimited
	CodeSessionExpired     = errcode.SessionExpired
	CodeInvalidRequest     = errcode.InvalidRequest
	CodeCredentialExpired  = errcode.CredentialExpired
	CodeEgressBlocked      = errcode.EgressBlocked
	CodeUpstreamError      = errcode.UpstreamError
	CodeInternal           = errcode.Internal
)

// knownCode bounds the code label of the requests metric: every code of
// package errcode (MISDIRECTED_REQUEST, CREDENTIAL_INVALID, ... included).
func knownCode(code string) bool { return errcode.Known(code) }

// Error is the error object of a response. It never holds a secret: its
// text is built from method names, credential paths and codes.
type Error struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	Detail     string         `json:"detail"`
	Suggestion string         `json:"suggestion"`
	DocsURL    string         `json:"docs_url,omitempty"`
	Context    map[string]any `json:"context"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorCode returns the code (errcode.Coded).
func (e *Error) ErrorCode() string { return e.Code }

// ErrorSuggestion returns the suggestion (errcode.Suggested).
func (e *Error) ErrorSuggestion() string { return e.Suggestion }

func newError(code, msg, suggestion string) *Error {
	return &Error{Code: code, Message: msg, Suggestion: suggestion, Context: map[string]any{}}
}

func invalid(msg string) *Error {
	return newError(CodeInvalidRequest, msg, "check the request against the SanctumAI protocol")
}

func denied(agent, path, action string) *Error {
	e := newError(CodeAccessDenied, "agent "+agent+" may not "+action+" "+path,
		"add a grant with action "+action+" for this agent and credential to the policy")
	e.Context["path"], e.Context["action"] = path, action
	return e
}

func vaultLocked() *Error {
	return newError(CodeVaultLocked, "the vault is sealed", "unseal the vault on the airlock host")
}

func sessionExpired() *Error {
	return newError(CodeSessionExpired, "unknown or expired session", "authenticate again")
}

func authFailed() *Error {
	return newError(CodeAuthFailed, "authentication failed",
		"check the agent name and its key file (airlock agent add NAME)")
}

func rateLimited(what string, retry int) *Error {
	e := newError(CodeRateLimited, "too many "+what, "retry in "+strconv.Itoa(retry)+"s")
	e.Detail = "retry_after=" + strconv.Itoa(retry)
	e.Context["retry_after"] = retry
	return e
}

func internal(msg string) *Error {
	return newError(CodeInternal, msg, "see the airlock log")
}

// backendError turns an error of the Backend into a response error. The
// backend reports its code with an ErrorCode() (errcode.Coded) or Code()
// method and its suggestion with ErrorSuggestion() (errcode.Suggested);
// message and suggestion are passed through scrub, which removes the
// credential's value.
func backendError(err error, scrub func(string) string) *Error {
	var coded errcode.Coded
	var coded2 interface{ Code() string }
	code := CodeUpstreamError
	switch {
	case errors.As(err, &coded):
		code = coded.ErrorCode()
	case errors.As(err, &coded2):
		code = coded2.Code()
	}
	if code == "BAD_REQUEST" {
		code = CodeInvalidRequest
	}
	e := newError(code, scrub(err.Error()), "")
	var sug errcode.Suggested
	if errors.As(err, &sug) {
		e.Suggestion = scrub(sug.ErrorSuggestion())
	}
	return e
}
