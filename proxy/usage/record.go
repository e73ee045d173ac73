package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log field names.
const (
	LogAgent      = "agent"
	LogRule       = "rule"
	LogCredential = "credential"
	LogModel      = "model"
	LogOutcome    = "outcome"
	LogBudget     = "budget"
)

// record turns a finished response into a Commit, metrics and a log line.
func (m *Meter) record(t *Ticket, tl *tally) {
	now := m.now()
	d := t.target.Dialect
	tok := tl.tokens(d)
	model := tl.model
	if model == "" {
		model = t.info.Model
	}
	name, price, priced := t.conf.prices.Lookup(model)
	outcome := OutcomeNone
	switch {
	case tl.final:
		outcome = OutcomeOK
	case tl.seen:
		outcome = OutcomePartial
	}
	if outcome == OutcomeNone {
		tok = Tokens{}
	}
	var cost int64
	if priced {
		cost = price.Cost(tok)
	}
	recModel := name
	if !priced && model != "" {
		recModel = model
	}
	// A whole 2xx answer without usage should not exist (airlock asks for
	// it); one that does may be an agent's trick (a body only the
	// provider's parser accepts, so no include_usage was added): charge
	// the reservation rather than let it run free.
	charged := outcome == OutcomeNone && tl.complete && !tl.errored && len(t.held) > 0
	var chargeBuf [2]Charge // a local store keeps no charge: they stay on the stack
	charges := chargeBuf[:0]
	for _, h := range t.held {
		b := &t.conf.budgets[h.i]
		amount := tok.Total()
		if b.USD > 0 {
			amount = cost
		}
		if charged {
			amount = h.amount
		}
		buckets := t.conf.window(h.i, now).buckets
		charges = append(charges, Charge{Bucket: buckets[len(buckets)-1], Amount: amount})
	}
	rec := Record{Time: now, Agent: t.target.Agent, Rule: t.target.Rule, Credential: t.target.Credential,
		Model: recModel, Outcome: outcome, Tokens: tok, CostNano: cost, Unpriced: !priced}
	var usedBuf [2]int64
	used, err := m.commit(t, charges, rec, usedBuf[:0])
	t.res = Result{Model: recModel, Outcome: outcome, Tokens: tok, CostUSD: float64(cost) / 1e9}
	t.result.Store(&t.res)
	m.count(t.target, name, rec)
	// A usual answer is on the proxy's audit line already (model, outcome,
	// every token kind, cost): this line is debug then, so a request makes
	// one Info line, not two; anything unusual is a warning or an error.
	level, msg := zapcore.DebugLevel, "llm usage"
	switch {
	case err != nil:
		level, msg = zapcore.ErrorLevel, "usage commit failed"
	case charged:
		level, msg = zapcore.WarnLevel, "llm answer complete without usage: its reservation is charged to the budgets"
	case !priced && outcome != OutcomeNone:
		level, msg = zapcore.WarnLevel, "llm usage of a model outside the price table: tokens counted, cost unknown"
	}
	if ce := m.log.Check(level, msg); ce != nil { // fields built only when the line is written
		fields := []zap.Field{zap.String(LogAgent, rec.Agent), zap.String(LogRule, rec.Rule),
			zap.String(LogCredential, rec.Credential), zap.String(LogModel, name), zap.String(LogOutcome, string(outcome)),
			zap.Int64("input_tokens", tok.Input), zap.Int64("output_tokens", tok.Output),
			zap.Int64("cached_input_tokens", tok.CachedInput), zap.Int64("reasoning_tokens", tok.Reasoning),
			zap.Float64("cost_usd", float64(cost)/1e9), zap.Bool("unpriced", !priced), zap.Bool("provider_error", tl.errored)}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		ce.Write(fields...)
	}
	for i, h := range t.held {
		if used != nil {
			m.budgetUsed(t.conf, h.i, now, used[i])
		} else {
			m.checkBudget(t.conf, h.i, now)
		}
	}
}

func (m *Meter) count(t Target, model string, rec Record) {
	if m.metrics == nil {
		return
	}
	sr := m.metrics.seriesOf(t, model, rec.Outcome)
	sr.requests.Inc()
	if rec.Outcome == OutcomeNone {
		return
	}
	// adding 0 changes nothing but still writes the counter's word (a
	// cache line moved between cores): most answers have no cached,
	// cache-write or reasoning tokens
	for i, n := range [...]int64{rec.Tokens.Input, rec.Tokens.Output, rec.Tokens.CachedInput, rec.Tokens.CacheWrite, rec.Tokens.Reasoning} {
		if n != 0 {
			sr.tokens[i].Add(float64(n))
		}
	}
	if rec.CostNano != 0 {
		sr.cost.Add(float64(rec.CostNano) / 1e9)
	}
}

// commit hands a record to the store: a local store gets no deadline (it
// never blocks on I/O; a timer per request would cost more than the
// commit), a shared one 5s. A local store also returns, read under the
// same lock, the committed usage of each of t's budgets over its current
// window (appended to used; what checkBudget would read from Window
// next); a shared one returns nil used.
func (m *Meter) commit(t *Ticket, charges []Charge, rec Record, used []int64) ([]int64, error) {
	if ms := m.memStore(); ms != nil {
		ms.mu.Lock()
		ms.commitLocked(t.id, charges, rec)
		for _, h := range t.held {
			w := t.conf.window(h.i, rec.Time)
			used = append(used, ms.used(t.conf.budgets[h.i].Name, w.buckets))
		}
		ms.mu.Unlock()
		return used, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	own := append([]Charge(nil), charges...) // a shared store may keep them
	return nil, m.store.Commit(ctx, t.id, own, rec)
}

// rejected counts and logs a refusal.
func (m *Meter) rejected(t Target, e *BudgetError, used, limit int64) {
	if m.metrics != nil {
		m.metrics.BudgetRejections.WithLabelValues(e.Budget).Inc()
		m.metrics.BudgetUsedRatio.WithLabelValues(e.Budget).Set(float64(used) / float64(limit))
	}
	m.log.Warn("budget exceeded", zap.String(LogBudget, e.Budget), zap.String(LogAgent, t.Agent),
		zap.String(LogRule, t.Rule), zap.String(LogCredential, t.Credential), zap.String("unit", e.Unit),
		zap.Float64("limit", e.Limit), zap.Float64("used", e.Used), zap.Float64("pending", e.Pending),
		zap.Float64("request", e.Request), zap.Time("reset", e.Reset))
}

// checkBudget updates a budget's gauge and sends its warning once per
// window when it crosses warn_at.
func (m *Meter) checkBudget(c *conf, i int, now time.Time) {
	b, w := &c.budgets[i], c.window(i, now)
	used, _, err := m.store.Window(context.Background(), b.Name, w.buckets)
	if err != nil {
		return
	}
	m.budgetUsed(c, i, now, used)
}

// budgetUsed is checkBudget with the committed usage of budget i's
// current window read already.
func (m *Meter) budgetUsed(c *conf, i int, now time.Time, used int64) {
	b, w := &c.budgets[i], c.window(i, now)
	buckets, end := w.buckets, w.end
	ratio := float64(used) / float64(b.limit())
	if c.gauges != nil {
		c.gauges[i].Set(ratio)
	}
	key := buckets[0]
	if b.Window == "24h" {
		key = c.warnKey[i] // one warning until it drops back below
	}
	if b.WarnAt <= 0 || ratio < b.WarnAt {
		if b.Window == "24h" {
			m.warnMu.Lock()
			delete(m.warned, key)
			m.warnMu.Unlock()
		}
		return
	}
	m.warnMu.Lock()
	if m.warned[key] {
		m.warnMu.Unlock()
		return
	}
	if len(m.warned) > 4096 {
		clear(m.warned)
	}
	m.warned[key] = true
	m.warnMu.Unlock()
	if m.metrics != nil {
		m.metrics.BudgetWarnings.WithLabelValues(b.Name).Inc()
	}
	m.log.Warn("budget warning", zap.String(LogBudget, b.Name), zap.Float64("used_ratio", ratio),
		zap.Float64("warn_at", b.WarnAt), zap.Time("reset", end))
	if m.webhook != "" {
		note := map[string]any{"event": "budget_warning", "budget": b.Name, "unit": b.unit(), "limit": b.toUnit(b.limit()),
			"used": b.toUnit(used), "used_ratio": ratio, "warn_at": b.WarnAt, "reset": end.UTC().Format(time.RFC3339)}
		go m.notify(note) // bounded: once per budget window
	}
}

// notify POSTs a warning to the webhook; failures are logged.
func (m *Meter) notify(note map[string]any) {
	body, _ := json.Marshal(note)
	req, err := http.NewRequest(http.MethodPost, m.webhook, bytes.NewReader(body))
	if err != nil {
		m.log.Error("budget webhook", zap.Error(err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		m.log.Error("budget webhook", zap.Error(err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		m.log.Error("budget webhook", zap.Int("status", resp.StatusCode))
	}
}
