// Package h2 serves HTTP/2 inside MITM'd tunnels: one x/net/http2 server
// connection per tunnel, every stream handed to the caller's handler (the
// pipeline), gRPC calls answered in gRPC's own terms (package grpcwire).
//
// # HTTP/2 inside MITM'd tunnels
//
// The leaf certificates offer ALPN "h2" and "http/1.1" (certs.Cache). An
// agent that picks h2 is served by golang.org/x/net/http2's server, one
// connection per tunnel, with every stream handed to the same pipeline as
// an HTTP/1.1 request (proxy's servePipeline): the tunnel pins each stream's
// :authority to the CONNECT target (421 MISDIRECTED_REQUEST on that stream
// only), and policy, injection, the observer chain, audit and metrics run
// per stream. Limits:
//
//   - at most [MaxStreams] concurrent streams per connection;
//   - the header list is capped like an HTTP/1.1 head (MaxHeaderBytes,
//     advertised as SETTINGS_MAX_HEADER_LIST_SIZE); a HEADERS +
//     CONTINUATION sequence beyond it ends the connection (the
//     CONTINUATION-flood fix of x/net);
//   - flow-control windows of [StreamWindow] per stream and
//     [ConnWindow] per connection bound what an agent can make airlock
//     buffer;
//   - streams reset before their handler runs are queued at most
//     4 × [MaxStreams] deep; beyond that the connection ends with
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
// upstream transport as a stream and copies trailers back (proxy/relay.go).
package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/net/http2"

	"github.com/airlock/airlock/proxy/internal/grpcwire"
)

// Limits of every h2 connection.
const (
	MaxStreams   = 250
	StreamWindow = 1 << 20
	ConnWindow   = 4 << 20
	MaxReadFrame = 1 << 20
)

// Door serves the MITM'd connections whose agent chose h2.
type Door struct {
	srv   *http2.Server
	base  *http.Server // limits (MaxHeaderBytes, IdleTimeout, ErrorLog) and graceful shutdown
	conns atomic.Int64 // connections being served (drain waits for 0)
}

// Drain sends GOAWAY on every h2 connection and waits until they have
// finished their streams and closed, or ctx ends. A nil Door has none.
func (h *Door) Drain(ctx context.Context) error {
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

// New builds the HTTP/2 server of MITM'd connections. front is the
// front door's server: its limits apply. Its protocol errors are counted on
// reg (airlock_h2_errors_total) and logged on log. Server.Shutdown calls
// Drain.
func New(front *http.Server, reg *prometheus.Registry, log *zap.Logger) *Door {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_h2_errors_total",
		Help: "HTTP/2 protocol errors on MITM'd agent connections, by x/net's error type (a fixed set: too_many_early_resets, ...).",
	}, []string{"type"})
	if err := reg.Register(errs); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			errs = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	base := &http.Server{
		IdleTimeout:    front.IdleTimeout,
		MaxHeaderBytes: front.MaxHeaderBytes,
		ErrorLog:       zap.NewStdLog(log.Named("h2")),
	}
	srv := &http2.Server{
		MaxConcurrentStreams:         MaxStreams,
		MaxUploadBufferPerStream:     StreamWindow,
		MaxUploadBufferPerConnection: ConnWindow,
		MaxReadFrameSize:             MaxReadFrame,
		IdleTimeout:                  front.IdleTimeout,
		CountError: func(errType string) {
			errs.WithLabelValues(errType).Inc()
			log.Warn("h2 protocol error", zap.String("type", errType))
		},
	}
	// ConfigureServer registers srv's graceful shutdown on base; base never
	// serves, it only carries limits and the shutdown hook (drain).
	_ = http2.ConfigureServer(base, srv)
	return &Door{srv: srv, base: base}
}

// Serve serves c with HTTP/2 when the agent chose h2 by ALPN and reports
// whether it did; false leaves c to the HTTP/1.1 loop. Every stream goes
// to next; a stream's context ends with RST_STREAM or the connection.
func (h *Door) Serve(c *tls.Conn, next http.Handler) bool {
	if h == nil || c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		return false
	}
	hf := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveStream(w, r, next) })
	h.conns.Add(1)
	defer h.conns.Add(-1)
	h.srv.ServeConn(c, &http2.ServeConnOpts{BaseConfig: h.base, Handler: hf})
	_ = c.Close()
	return true
}

// serveStream runs one h2 stream through next. gRPC calls get their
// refusals as gRPC statuses (package grpcwire).
func serveStream(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if grpcwire.Is(r.Header) {
		w = &grpcwire.Writer{ResponseWriter: w}
		r.Header["Grpc-Accept-Encoding"] = []string{"identity"} // messages airlock can scrub (grpcwire.Scrub)
	}
	next.ServeHTTP(w, r)
}
