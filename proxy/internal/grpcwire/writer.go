// Package grpcwire is gRPC as airlock sees it on the wire: which requests
// are gRPC calls ([Is]), refusals written as gRPC statuses ([Writer]) and
// responses scrubbed message by message ([Scrub]).
package grpcwire

import (
	"net/http"
	"strings"

	"github.com/airlock/airlock/proxy/errcode"
)

// Writer is the ResponseWriter of a gRPC call (an h2 stream with
// content-type application/grpc*): airlock's own refusals become gRPC
// statuses (errcode.Error.WriteGRPC: HTTP 200, grpc-status 7
// PERMISSION_DENIED for a policy denial, the airlock code in
// grpc-message) instead of a JSON body the client cannot parse. Relayed
// upstream answers pass through untouched, trailers included.
type Writer struct {
	http.ResponseWriter
}

// RenderError is errcode.Renderer.
func (w *Writer) RenderError(e *errcode.Error) { e.WriteGRPC(w.ResponseWriter) }

// Flush passes on flushes (streamed gRPC messages).
func (w *Writer) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the stream's writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Is reports whether h declares a gRPC request (application/grpc,
// application/grpc+proto, ...); gRPC-Web is not gRPC on the wire.
func Is(h http.Header) bool {
	ct := h.Get("Content-Type")
	const g = "application/grpc"
	if len(ct) < len(g) || !strings.EqualFold(ct[:len(g)], g) {
		return false
	}
	rest := ct[len(g):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}
