package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/net/http2"
)

// HTTP/2 inside MITM'd tunnels
//
// The leaf certificates offer ALPN "h2" and "http/1.1" (certs.Cache). An
// agent that picks h2 is served by golang.org/x/net/http2's server, one
// connection per tunnel, with every stream handed to the same pipeline as
// an HTTP/1.1 request (servePipeline): the tunnel pins each stream's
// :authority to the CONNECT target (421 MISDIRECTED_REQUEST on that stream
// only), and policy, injection, the observer chain, audit and metrics run
// per stream. Limits:
//
//   - at most [h2MaxStreams] concurrent streams per connection;
//   - the header list is capped like an HTTP/1.1 head (MaxHeaderBytes,
//     advertised as SETTINGS_MAX_HEADER_LIST_SIZE); a HEADERS +
//     CONTINUATION sequence beyond it ends the connection (the
//     CONTINUATION-flood fix of x/net);
//   - flow-control windows of [h2StreamWindow] per stream and
//     [h2ConnWindow] per connection bound what an agent can make airlock
//     buffer;
//   - streams reset before their handler runs are queued at most
//     4 × [h2MaxStreams] deep; beyond that the connection ends with
//     ENHANCE_YOUR_CALM (the rapid-reset fix of x/net);
//   - the idle timeout of the front door closes quiet connections (GOAWAY);
//   - Shutdown sends GOAWAY and waits for in-flight streams (drain).
//
// Protocol errors x/net counts are logged and counted
// (airlock_h2_errors_total by x/net's fixed error names).
//
// The upstream side negotiates h2 on its own (newTransport sets
// ForceAttemptHTTP2), so gRPC and other full-duplex streams keep their
// shape end to end: the relay hands the stream's request body to the
// upstream transport as a stream and copies trailers back (relay.go).

const (
	h2MaxStreams   = 250
	h2StreamWindow = 1 << 20
	h2ConnWindow   = 4 << 20
	h2MaxReadFrame = 1 << 20
)

// h2Door serves the MITM'd connections whose agent chose h2.
type h2Door struct {
	srv   *http2.Server
	base  *http.Server // limits (MaxHeaderBytes, IdleTimeout, ErrorLog) and graceful shutdown
	conns atomic.Int64 // connections being served (drain waits for 0)
}

// drain sends GOAWAY on every h2 connection and waits until they have
// finished their streams and closed, or ctx ends.
func (h *h2Door) drain(ctx context.Context) error {
	if h == nil {
		return nil
	}
	go func() { _ = h.base.Shutdown(ctx) }() // GOAWAY (http2.ConfigureServer's hook)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for h.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// newH2 builds the HTTP/2 server of MITM'd connections. front is the
// front door's server: its limits apply. Server.Shutdown calls drain.
func (s *Server) newH2(front *http.Server) *h2Door {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_h2_errors_total",
		Help: "HTTP/2 protocol errors on MITM'd agent connections, by x/net's error type (a fixed set: too_many_early_resets, ...).",
	}, []string{"type"})
	if err := s.metrics.Registry.Register(errs); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			errs = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	base := &http.Server{
		IdleTimeout:    front.IdleTimeout,
		MaxHeaderBytes: front.MaxHeaderBytes,
		ErrorLog:       zap.NewStdLog(s.log.Named("h2")),
	}
	srv := &http2.Server{
		MaxConcurrentStreams:         h2MaxStreams,
		MaxUploadBufferPerStream:     h2StreamWindow,
		MaxUploadBufferPerConnection: h2ConnWindow,
		MaxReadFrameSize:             h2MaxReadFrame,
		IdleTimeout:                  front.IdleTimeout,
		CountError: func(errType string) {
			errs.WithLabelValues(errType).Inc()
			s.log.Warn("h2 protocol error", zap.String("type", errType))
		},
	}
	// ConfigureServer registers srv's graceful shutdown on base; base never
	// serves, it only carries limits and the shutdown hook (drain).
	_ = http2.ConfigureServer(base, srv)
	return &h2Door{srv: srv, base: base}
}

// serveH2 serves c with HTTP/2 when the agent chose h2 by ALPN and reports
// whether it did; false leaves c to the HTTP/1.1 loop.
func (s *Server) serveH2(c *tls.Conn, t *tunnel) bool {
	if c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS || s.h2 == nil {
		return false
	}
	// t.ctx stays nil: each upstream request derives from its stream's
	// context, cancelled by RST_STREAM or when the connection ends.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, t) })
	s.h2.conns.Add(1)
	defer s.h2.conns.Add(-1)
	s.h2.srv.ServeConn(c, &http2.ServeConnOpts{BaseConfig: s.h2.base, Handler: h})
	_ = c.Close()
	return true
}

// serveStream runs one h2 stream through the pipeline. gRPC calls get
// their refusals as gRPC statuses (grpc.go).
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, t *tunnel) {
	if isGRPC(r.Header) {
		w = &grpcWriter{ResponseWriter: w}
		r.Header["Grpc-Accept-Encoding"] = []string{"identity"} // messages airlock can scrub (grpcscrub.go)
	}
	s.servePipeline(w, r, t)
}

// isGRPC reports whether h declares a gRPC request (application/grpc,
// application/grpc+proto, ...); gRPC-Web is not gRPC on the wire.
func isGRPC(h http.Header) bool {
	ct := h.Get("Content-Type")
	const g = "application/grpc"
	if len(ct) < len(g) || !strings.EqualFold(ct[:len(g)], g) {
		return false
	}
	rest := ct[len(g):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}
