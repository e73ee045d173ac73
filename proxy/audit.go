package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/proxy/audit"
)

// Decisions recorded in audit lines and the requests metric.
const (
	decisionInject = "inject"
	decisionAllow  = "allow"
	decisionTunnel = "tunnel"
	decisionDeny   = "deny"
	decisionError  = "error"
)

// event is the audit record of one request, filled in as the pipeline runs.
// It holds names only: never a secret, a query string or a body.
type event struct {
	start      time.Time
	agent      string
	rule       string
	credential string
	inject     string
	method     string
	host       string
	port       int
	path       string
	decision   string
	code       string
	status     int
	bytes      int64
	upstream   time.Duration
	door       string // "rpc" for the SanctumAI door, empty for the proxy
	aborted    bool   // the response stream was cut mid-body
}

// fail marks the event as refused or failed with e.
func (ev *event) fail(e *Error) {
	ev.code, ev.status = e.Code, e.Status
	if ev.decision == "" {
		ev.decision = decisionDeny
		if e.Status >= 500 {
			ev.decision = decisionError
		}
	}
}

// record writes the audit line and counts the request.
func (s *Server) record(ev *event) {
	agent := ev.agent
	if agent == "" {
		agent = "unknown"
	}
	rule := ev.rule
	if rule == "" {
		rule = "none"
	}
	code := ev.code
	if code == "" {
		code = "OK"
	}
	s.metrics.Requests.WithLabelValues(agent, rule, ev.decision, code).Inc()
	s.auditFile(ev, agent, code) // hash-chained file, when configured (auditlog.go)
	if ev.decision == decisionDeny || (ev.decision == decisionError && ev.code != "") {
		s.metrics.Denials.WithLabelValues(agent, code).Inc()
	}
	if ev.decision == decisionInject && ev.code == "" && ev.credential != "" {
		s.metrics.CredentialUses.WithLabelValues(ev.credential, agent, rule).Inc()
	}
	if ev.upstream > 0 {
		s.metrics.UpstreamSeconds.WithLabelValues(rule).Observe(ev.upstream.Seconds())
	}
	level := zapcore.InfoLevel
	switch {
	case ev.decision == decisionError:
		level = zapcore.ErrorLevel
	case ev.decision == decisionDeny:
		level = zapcore.WarnLevel
	}
	ce := s.log.Check(level, "request")
	if ce == nil {
		return
	}
	fp := auditFields.Get().(*[14]zap.Field) // zap encodes synchronously
	defer func() { *fp = [14]zap.Field{}; auditFields.Put(fp) }()
	fields := fp[:0]
	fields = append(fields,
		zap.String("agent", agent),
		zap.String("rule", ev.rule),
		zap.String("action", ev.decision),
		zap.String("credential", ev.credential),
		zap.String("inject", ev.inject),
		zap.String("method", ev.method),
		zap.String("host", ev.host+":"+strconv.Itoa(ev.port)),
		zap.String("path", ev.path),
		zap.Int("status", ev.status),
		zap.Int64("bytes", ev.bytes),
		zap.Float64("duration_ms", float64(time.Since(ev.start).Microseconds())/1000),
		zap.String("code", code),
		zap.String("door", orString(ev.door, "proxy")),
	)
	if ev.aborted {
		fields = append(fields, zap.Bool("aborted", true))
	}
	ce.Write(fields...)
}

// auditFields pools the field arrays of audit lines: one per request
// would otherwise be ~1 KiB of garbage.
var auditFields = sync.Pool{New: func() any { return new([14]zap.Field) }}

func itoa(n int) string { return strconv.Itoa(n) }

func fieldAgent(a string) zap.Field { return zap.String("agent", a) }
func fieldHost(h string) zap.Field  { return zap.String("host", h) }
func fieldErr(err error) zap.Field  { return zap.String("error", err.Error()) }

// countingWriter counts body bytes and remembers the status written.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *countingWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach Hijack (WebSockets).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// auditFile queues ev for the audit file, when one is configured. It is
// called from record with the label values already defaulted.
func (s *Server) auditFile(ev *event, agent, code string) {
	a := s.ops.audit.Load()
	if a == nil {
		return
	}
	a.Write(audit.Line{
		Time: ev.start.UTC().Format(time.RFC3339Nano), Agent: agent, Rule: ev.rule, Decision: ev.decision,
		Credential: ev.credential, Inject: ev.inject, Method: ev.method,
		Host: ev.host + ":" + strconv.Itoa(ev.port), Path: ev.path, Status: ev.status, Bytes: ev.bytes,
		DurationMS: float64(time.Since(ev.start).Microseconds()) / 1000, Code: code, Door: orString(ev.door, "proxy"),
	})
}
