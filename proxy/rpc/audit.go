package rpc

import (
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/door"
)

// Field names of the door's own log lines (the decision line uses the
// shared audit.Field* names).
const (
	fieldSource        = "source" // the peer address an unauthenticated connection came from
	fieldEvicted       = "evicted"
	fieldAuthenticated = "authenticated"
	fieldLimit         = "limit"
	fieldStack         = "stack"
)

// metrics are the door's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_rpc_requests_total",
		Help: "SanctumAI RPC requests by agent, method and result code (OK on success).",
	}, []string{"agent", "method", "code"})}
	if reg != nil {
		if err := reg.Register(m.requests); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					m.requests = existing
				}
			}
		}
	}
	return m
}

// count increments the requests metric with bounded labels: agent only when
// registered in the vault, method from the known set, code from the known
// codes.
func (s *Server) count(agent, method, code string) {
	if d := s.b.Snapshot(); agent == "" || d == nil || d.Agents[agent] == nil {
		agent = "unknown"
	}
	if _, ok := methods[method]; !ok {
		method = "invalid"
	}
	if !knownCode(code) && code != "OK" {
		code = CodeInternal
	}
	s.metrics.requests.WithLabelValues(agent, method, code).Inc()
}

// record writes the audit line of c and counts it. Success is Info, a
// refusal Warn, an internal failure Error; handing out a secret is Warn.
func (s *Server) record(c *call, e *Error) {
	code := "OK"
	action := "allow"
	level := zapcore.InfoLevel
	if c.sensitive {
		level = zapcore.WarnLevel
	}
	if e != nil {
		code, action, level = e.Code, "deny", zapcore.WarnLevel
		if e.Code == CodeInternal || e.Code == CodeUpstreamError {
			action, level = "error", zapcore.ErrorLevel
		}
	}
	s.count(c.agent, c.method, code)
	if c.dec != nil { // the pipeline's audit line (hash chain, requests metric)
		o := door.Outcome{Status: c.status}
		if e != nil {
			o.Err = e
		}
		c.dec.Done(o)
	}
	ce := s.log.Check(level, "rpc")
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String(audit.FieldAgent, clip(c.agent)),
		zap.String(audit.FieldAction, action),
		zap.String(audit.FieldMethod, c.method),
		zap.String(audit.FieldOperation, c.operation),
		zap.String(audit.FieldCredential, c.credential),
		zap.Float64(audit.FieldDurationMS, float64(time.Since(c.start).Microseconds())/1000),
		zap.String(audit.FieldCode, code),
		zap.String(audit.FieldDoor, "rpc"),
	}
	if c.host != "" {
		fields = append(fields, zap.String(audit.FieldHost, c.host), zap.Int(audit.FieldStatus, c.status))
	}
	ce.Write(fields...)
}

// clip bounds a client-chosen name (an unknown agent_name) in log lines.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}
