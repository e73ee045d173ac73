package proxy

import "net/http"

// grpcWriter is the ResponseWriter of a gRPC call (an h2 stream with
// content-type application/grpc*): airlock's own refusals become gRPC
// statuses (errcode.Error.WriteGRPC: HTTP 200, grpc-status 7
// PERMISSION_DENIED for a policy denial, the airlock code in
// grpc-message) instead of a JSON body the client cannot parse. Relayed
// upstream answers pass through untouched, trailers included.
type grpcWriter struct {
	http.ResponseWriter
}

// RenderError is errcode.Renderer.
func (w *grpcWriter) RenderError(e *Error) { e.WriteGRPC(w.ResponseWriter) }

// Flush passes on flushes (streamed gRPC messages).
func (w *grpcWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the stream's writer.
func (w *grpcWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
