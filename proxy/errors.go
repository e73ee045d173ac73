package proxy

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
	CodeAuthFailed         = "AUTH_FAILED"
	CodeAccessDenied       = "ACCESS_DENIED"
	CodeCredentialNotFound = "CREDENTIAL_NOT_FOUND"
	CodeCredentialExpired  = "CREDENTIAL_EXPIRED"
	CodeCredentialInvalid  = "CREDENTIAL_INVALID"
	CodeVaultLocked        = "VAULT_LOCKED"
	CodeRateLimited        = "RATE_LIMITED"
	CodeEgressBlocked      = "EGRESS_BLOCKED"
	CodeUpstreamError      = "UPSTREAM_ERROR"
	CodeBadRequest         = "BAD_REQUEST"
	CodeMisdirected        = "MISDIRECTED_REQUEST"
)

// Error is a refusal or failure airlock answers itself. It never carries a
// secret: messages are built from rule names, credential paths and hosts.
type Error struct {
	Status     int
	Code       string
	Message    string
	Suggestion string
	RetryAfter int // seconds, for RATE_LIMITED
	Upstream   string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorCode returns the code (the rpc door maps it onto SanctumAI codes).
func (e *Error) ErrorCode() string { return e.Code }

func newError(status int, code, msg, suggestion string) *Error {
	return &Error{Status: status, Code: code, Message: msg, Suggestion: suggestion}
}

// asError turns any error into an *Error, defaulting to a 502 UPSTREAM_ERROR.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(http.StatusBadGateway, CodeUpstreamError, err.Error(),
		"check that the upstream is reachable and its TLS certificate is valid")
}

type errorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Suggestion string `json:"suggestion,omitempty"`
		Upstream   string `json:"upstream_error,omitempty"`
	} `json:"error"`
}

// body renders the JSON document of e.
func (e *Error) body() []byte {
	var b errorBody
	b.Error.Code, b.Error.Message, b.Error.Suggestion, b.Error.Upstream = e.Code, e.Message, e.Suggestion, e.Upstream
	out, _ := json.Marshal(b)
	return append(out, '\n')
}

// header fills h with the headers of e's response.
func (e *Error) header(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("X-Airlock-Error", e.Code)
	h.Set("Cache-Control", "no-store")
	if e.Status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="airlock"`)
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
}

// write sends e as the response on w.
func (e *Error) write(w http.ResponseWriter) {
	e.header(w.Header())
	b := e.body()
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

// response builds e as an *http.Response (for raw connections: CONNECT
// refusals written before any TLS).
func (e *Error) response(req *http.Request) *http.Response {
	b := e.body()
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
	e.header(resp.Header)
	return resp
}
