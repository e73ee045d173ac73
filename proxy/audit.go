package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/usage"
)

// Decisions recorded in audit lines and the requests metric.
const (
	decisionInject = "inject"
	decisionAllow  = "allow"
	decisionTunnel = "tunnel"
	decisionDeny   = "deny"
	decisionError  = "error"
	// Credential operations of the RPC door.
	decisionUse     = "use"      // sign, encrypt, decrypt: the credential used inside airlock
	decisionHandOut = "hand_out" // retrieve, http_header: the secret handed to the agent
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
	logHost    string // host:port as the line writes it, when known beforehand (hostField)
	path       string
	decision   string
	code       string
	status     int
	bytes      int64
	upstream   time.Duration
	door       string        // door.Proxy, door.RPC, ...; "" is the proxy
	operation  string        // door.OpProxy, door.OpSign, ...; "" is a proxied request
	aborted    bool          // the response stream was cut mid-body
	reason     string        // why it was refused or failed, for the log (never a secret)
	approver   string        // approval decisions: who decided (refuse.go)
	ticket     *usage.Ticket // LLM usage of a metered request (meter.go); nil: not metered
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
	dr, op := orString(ev.door, door.Proxy), orString(ev.operation, door.OpProxy)
	k := seriesKey{agent: agent, rule: rule, decision: ev.decision, code: code, door: dr, op: op,
		denied: ev.decision == decisionDeny || (ev.decision == decisionError && ev.code != "")}
	if usesCredential(ev.decision) && ev.code == "" {
		k.credential = ev.credential
	}
	rs := s.metrics.requestSeries(k) // label-resolved once per combination (metrics.go)
	rs.requests.Inc()
	s.auditFile(ev, agent, code) // hash-chained file and audit tap, when configured
	if rs.denials != nil {
		rs.denials.Inc()
	}
	if rs.uses != nil {
		rs.uses.Inc()
	}
	if ev.upstream > 0 {
		rs.observeUpstream(s.metrics, rule, ev.upstream)
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
	fp := auditFields.Get().(*[24]zap.Field) // zap encodes synchronously
	fields := fp[:0]
	defer func() { clear(fp[:min(len(fields), len(fp))]); auditFields.Put(fp) }() // only the fields used hold references
	fields = append(fields,
		zap.String(audit.FieldAgent, agent),
		zap.String(audit.FieldRule, ev.rule),
		zap.String(audit.FieldAction, ev.decision),
		zap.String(audit.FieldCredential, ev.credential),
		zap.String(audit.FieldInject, ev.inject),
		zap.String(audit.FieldMethod, ev.method),
		zap.String(audit.FieldHost, hostField(ev)),
		zap.String(audit.FieldPath, ev.path),
		zap.Int(audit.FieldStatus, ev.status),
		zap.Int64(audit.FieldBytes, ev.bytes),
		zap.Float64(audit.FieldDurationMS, float64(time.Since(ev.start).Microseconds())/1000),
		zap.String(audit.FieldCode, code),
		zap.String(audit.FieldDoor, dr),
	)
	if op != door.OpProxy {
		fields = append(fields, zap.String(audit.FieldOperation, op))
	}
	if ev.aborted {
		fields = append(fields, zap.Bool(audit.FieldAborted, true))
	}
	if ev.reason != "" {
		fields = append(fields, zap.String("reason", ev.reason))
	}
	if ev.approver != "" {
		fields = append(fields, zap.String(audit.FieldApprover, ev.approver))
	}
	fields = meterFields(ev, fields) // model and tokens of a metered request (meter.go)
	ce.Write(fields...)
}

// auditFields pools the field arrays of audit lines: one per request
// would otherwise be ~1 KiB of garbage.
var auditFields = sync.Pool{New: func() any { return new([24]zap.Field) }}

// usesCredential reports whether a decision used a credential (the
// credential-uses counter).
func usesCredential(decision string) bool {
	return decision == decisionInject || decision == decisionUse || decision == decisionHandOut
}

// hostField is host:port, or "" for an operation without a target.
func hostField(ev *event) string {
	if ev.logHost != "" {
		return ev.logHost // the tunnel's, made once per connection
	}
	if ev.host == "" && ev.port == 0 && ev.operation != "" && ev.operation != door.OpProxy && ev.operation != door.OpHTTPRequest {
		return ""
	}
	return ev.host + ":" + strconv.Itoa(ev.port)
}

func itoa(n int) string { return strconv.Itoa(n) }

func fieldAgent(a string) zap.Field { return zap.String(audit.FieldAgent, a) }
func fieldHost(h string) zap.Field  { return zap.String(audit.FieldHost, h) }
func fieldErr(err error) zap.Field  { return zap.String(audit.FieldError, err.Error()) }

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
	a, tap := s.ops.audit.Load(), s.auditTap.Load()
	if a == nil && tap == nil {
		return
	}
	l := audit.Line{
		At: ev.start, Agent: agent, Rule: ev.rule, Decision: ev.decision,
		Credential: ev.credential, Inject: ev.inject, Method: ev.method,
		Host: hostField(ev), Path: ev.path, Status: ev.status, Bytes: ev.bytes,
		DurationMS: float64(time.Since(ev.start).Microseconds()) / 1000, Code: code, Door: orString(ev.door, door.Proxy),
		Operation: lineOperation(ev.operation), Approver: ev.approver,
	}
	if a != nil {
		l.Time = ev.start.UTC().Format(time.RFC3339Nano) // the tap reads At (formatting is most of a tap's cost)
	}
	if tap != nil {
		(*tap)(l) // the console feed (SetAuditTap)
	}
	if a != nil {
		a.Write(l)
	}
}

// lineOperation is the operation field of an audit file line: "" for a
// proxied request, as before operations were recorded.
func lineOperation(op string) string {
	if op == door.OpProxy {
		return ""
	}
	return op
}
