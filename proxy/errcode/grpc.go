package errcode

import (
	"net/http"
	"strconv"
	"strings"
)

// gRPC
//
// A gRPC client cannot read a JSON error: it wants HTTP 200,
// content-type application/grpc and a grpc-status. A door serving gRPC
// wraps its ResponseWriter in a [Renderer], and [Error.Write] hands the
// error to it; [Error.WriteGRPC] is the usual rendering (trailers-only:
// grpc-status and grpc-message in the one HEADERS frame).

// Renderer is a ResponseWriter that renders errors in its own wire form.
// [Error.Write] finds one through Unwrap() http.ResponseWriter wrappers.
type Renderer interface {
	RenderError(e *Error)
}

func rendererOf(w http.ResponseWriter) Renderer {
	for w != nil {
		if r, ok := w.(Renderer); ok {
			return r
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// gRPC status codes (google.golang.org/grpc/codes) airlock answers with.
const (
	GRPCInvalidArgument   = 3
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// GRPCStatus is the gRPC status code e is answered with: 7
// PERMISSION_DENIED for every refusal by policy (403, 421), 16 for 407, 8
// for 429, 14 for an unreachable upstream or sealed vault, 3 for a bad
// request, 13 otherwise.
func (e *Error) GRPCStatus() int {
	switch e.Status {
	case http.StatusForbidden, http.StatusMisdirectedRequest:
		return GRPCPermissionDenied
	case http.StatusProxyAuthRequired, http.StatusUnauthorized:
		return GRPCUnauthenticated
	case http.StatusTooManyRequests:
		return GRPCResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return GRPCUnavailable
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge:
		return GRPCInvalidArgument
	}
	return GRPCInternal
}

// GRPCMessage is the grpc-message of e: "CODE: message (hint: suggestion)".
func (e *Error) GRPCMessage() string {
	m := e.Code + ": " + e.Message
	if e.Suggestion != "" {
		m += " (hint: " + e.Suggestion + ")"
	}
	return m
}

// WriteGRPC sends e as a trailers-only gRPC response: HTTP 200,
// content-type application/grpc, grpc-status, grpc-message
// (percent-encoded as the gRPC spec asks) and X-Airlock-Error.
func (e *Error) WriteGRPC(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("X-Airlock-Error", e.Code)
	h.Set("Grpc-Status", strconv.Itoa(e.GRPCStatus()))
	h.Set("Grpc-Message", grpcEncode(e.GRPCMessage()))
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
}

// grpcEncode percent-encodes what the gRPC spec says grpc-message may not
// carry raw: bytes outside 0x20..0x7e, and '%'.
func grpcEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
