// Package errcode holds the stable error codes airlock answers with and the
// JSON error shape, shared by every door (HTTP proxy, RPC, transparent).
//
// # Codes
//
// The codes are a contract (DESIGN.md "Contracts"): agents and SDKs branch
// on them. [Error] carries one with the HTTP status, a message and a
// suggestion; it never carries a secret.
//
// # The error interface across doors
//
// A door that is not HTTP (the SanctumAI RPC door) reads an error's code and
// suggestion through [Coded] and [Suggested], which [*Error] implements; any
// other error type may implement them too.
package errcode

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
)

// Error codes airlock itself answers with (DESIGN.md "Contracts").
const (
	AuthFailed         = "AUTH_FAILED"
	AccessDenied       = "ACCESS_DENIED"
	CredentialNotFound = "CREDENTIAL_NOT_FOUND"
	CredentialExpired  = "CREDENTIAL_EXPIRED"
	CredentialInvalid  = "CREDENTIAL_INVALID"
	VaultLocked        = "VAULT_LOCKED"
	RateLimited        = "RATE_LIMITED"
	EgressBlocked      = "EGRESS_BLOCKED"
	UpstreamError      = "UPSTREAM_ERROR"
	BadRequest         = "BAD_REQUEST"
	Misdirected        = "MISDIRECTED_REQUEST"
	LoopDetected       = "LOOP_DETECTED"
	TooManyConns       = "TOO_MANY_CONNECTIONS"

	// Codes of the SanctumAI RPC door (its SDKs map them onto exceptions).
	LeaseExpired   = "LEASE_EXPIRED"
	SessionExpired = "SESSION_EXPIRED"
	InvalidRequest = "INVALID_REQUEST" // the RPC door's name for BadRequest
	Internal       = "INTERNAL_ERROR"

	// Codes of this wave (SCHEMA.md); some have no producer yet.
	BudgetExceeded              = "BUDGET_EXCEEDED"               // 429
	ApprovalDenied              = "APPROVAL_DENIED"               // 403
	ApprovalTimeout             = "APPROVAL_TIMEOUT"              // 403
	PlaceholderNotAllowed       = "PLACEHOLDER_NOT_ALLOWED"       // 403
	CredentialSourceUnavailable = "CREDENTIAL_SOURCE_UNAVAILABLE" // 503
	BadPath                     = "BAD_PATH"                      // 400
)

// Status is the HTTP status each code is answered with by default.
var Status = map[string]int{
	AuthFailed:                  http.StatusProxyAuthRequired,
	AccessDenied:                http.StatusForbidden,
	CredentialNotFound:          http.StatusBadGateway,
	CredentialExpired:           http.StatusForbidden,
	CredentialInvalid:           http.StatusBadGateway,
	VaultLocked:                 http.StatusServiceUnavailable,
	RateLimited:                 http.StatusTooManyRequests,
	EgressBlocked:               http.StatusForbidden,
	UpstreamError:               http.StatusBadGateway,
	BadRequest:                  http.StatusBadRequest,
	Misdirected:                 http.StatusMisdirectedRequest,
	LoopDetected:                http.StatusLoopDetected,
	TooManyConns:                http.StatusTooManyRequests,
	BudgetExceeded:              http.StatusTooManyRequests,
	ApprovalDenied:              http.StatusForbidden,
	ApprovalTimeout:             http.StatusForbidden,
	PlaceholderNotAllowed:       http.StatusForbidden,
	CredentialSourceUnavailable: http.StatusServiceUnavailable,
	BadPath:                     http.StatusBadRequest,
	LeaseExpired:                http.StatusForbidden,
	SessionExpired:              http.StatusUnauthorized,
	InvalidRequest:              http.StatusBadRequest,
	Internal:                    http.StatusInternalServerError,
}

// Known reports whether code is one of the codes above (metrics use it to
// keep their code label bounded).
func Known(code string) bool { _, ok := Status[code]; return ok }

// Coded is implemented by errors that carry an airlock code.
type Coded interface{ ErrorCode() string }

// Suggested is implemented by errors that carry a suggestion for the agent.
type Suggested interface{ ErrorSuggestion() string }

// Error is a refusal or failure airlock answers itself. It never carries a
// secret: messages are built from rule names, credential paths and hosts.
type Error struct {
	Status     int
	Code       string
	Message    string
	Suggestion string
	RetryAfter int // seconds, for RATE_LIMITED and BUDGET_EXCEEDED
	Upstream   string
	// Budget names the spent budget of a BUDGET_EXCEEDED answer.
	Budget *Budget
	// NoRetry sets x-should-retry: false, which the OpenAI and Anthropic
	// SDKs obey instead of retrying (a budget spent until its reset).
	NoRetry bool
}

// Budget is the budget member of a BUDGET_EXCEEDED body.
type Budget struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"` // "tokens" or "usd"
	Limit   float64 `json:"limit"`
	Used    float64 `json:"used"`
	Pending float64 `json:"reserved_in_flight"`
	Request float64 `json:"request"`   // what the refused request would have reserved
	Reset   string  `json:"resets_at"` // RFC 3339, UTC
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorCode returns the code ([Coded]).
func (e *Error) ErrorCode() string { return e.Code }

// ErrorSuggestion returns the suggestion ([Suggested]).
func (e *Error) ErrorSuggestion() string { return e.Suggestion }

// New returns an error with the given status, code, message and suggestion.
func New(status int, code, msg, suggestion string) *Error {
	return &Error{Status: status, Code: code, Message: msg, Suggestion: suggestion}
}

// As turns any error into an *Error: an *Error as is, a [Coded] error with
// its code, status and suggestion, anything else a 502 UPSTREAM_ERROR.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var c Coded
	if errors.As(err, &c) && Known(c.ErrorCode()) {
		e = New(Status[c.ErrorCode()], c.ErrorCode(), err.Error(), "")
		var s Suggested
		if errors.As(err, &s) {
			e.Suggestion = s.ErrorSuggestion()
		}
		return e
	}
	return New(http.StatusBadGateway, UpstreamError, err.Error(),
		"check that the upstream is reachable and its TLS certificate is valid")
}

type errorBody struct {
	Error struct {
		Code       string  `json:"code"`
		Message    string  `json:"message"`
		Suggestion string  `json:"suggestion,omitempty"`
		Upstream   string  `json:"upstream_error,omitempty"`
		Budget     *Budget `json:"budget,omitempty"`
	} `json:"error"`
}

// Body renders the JSON document of e.
func (e *Error) Body() []byte {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Suggestion, b.Error.Upstream = e.Code, e.Message, e.Suggestion, e.Upstream
	b.Error.Budget = e.Budget
	out, _ := json.Marshal(b)
	return append(out, '\n')
}

// Header fills h with the headers of e's response.
func (e *Error) Header(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("X-Airlock-Error", e.Code)
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="airlock"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.NoRetry {
		h.Set("X-Should-Retry", "false")
	}
}

// Write sends e as the response on w, or hands it to w's [Renderer].
func (e *Error) Write(w http.ResponseWriter) {
	if r := rendererOf(w); r != nil { // a door with its own wire form (gRPC: package grpcwire)
		r.RenderError(e)
		return
	}
	e.Header(w.Header())
	b := e.Body()
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// Response builds e as an *http.Response (for raw connections: CONNECT
// refusals written before any TLS).
func (e *Error) Response(req *http.Request) *http.Response {
	b := e.Body()
	resp := &http.Response{
		StatusCode:    e.Status,
		Status:        strconv.Itoa(e.Status) + " " + http.StatusText(e.Status),
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header),
		ContentLength: int64(len(b)),
		Body:          io.NopCloser(bytes.NewReader(b)),
		Request:       req,
		Close:         true,
	}
	e.Header(resp.Header)
	return resp
}
