package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/usage"
)

// LLM usage metering and budgets (package usage), in the pipeline:
//
//	judge (rule matched, credential resolved) ▶ admit: reserve on every
//	covering budget, 429 BUDGET_EXCEEDED if one has no room ▶ inject ▶ dial
//	▶ observer chain: scrubber ▶ meter (Ticket.Wrap) ▶ Config.Observers ▶
//	relay; the body's EOF or Close commits what the provider reported ▶
//	the audit line carries model and tokens.
//
// A request that never gets a response (dial error, timeout, a later
// refusal) ends its ticket with Abort, which releases the reservation.

// UsageBudgets converts the policy's budgets for [usage.Meter].
func UsageBudgets(p *policy.Policy) []usage.Budget {
	if p == nil {
		return nil
	}
	out := make([]usage.Budget, 0, len(p.Budgets))
	for _, b := range p.Budgets {
		out = append(out, usage.Budget{Name: b.Name, Agent: b.Agent, Rule: b.Rule, Credential: b.Credential,
			Tokens: b.Tokens, USD: b.USD, Window: b.Window, Location: b.Location, WarnAt: b.WarnAt})
	}
	return out
}

// UsagePrices is the shipped price table with the policy's prices: over it.
func UsagePrices(p *policy.Policy) (*usage.Prices, error) {
	if p == nil || len(p.Prices) == 0 {
		return usage.ShippedPrices(), nil
	}
	over := make(map[string]usage.Price, len(p.Prices))
	for name, pr := range p.Prices {
		over[name] = usage.Price{Input: pr.Input, Output: pr.Output, CachedInput: pr.CachedInput}
	}
	prices, err := usage.ShippedPrices().With(over)
	if err != nil {
		return nil, fmt.Errorf("policy prices: %w", err)
	}
	return prices, nil
}

// reloadMeter gives the meter the budgets and prices of a new policy. The
// policy parser has validated both; a refusal here keeps the old ones.
func (s *Server) reloadMeter(p *policy.Policy) {
	if s.meter == nil || p == nil {
		return
	}
	prices, err := UsagePrices(p)
	if err == nil {
		err = s.meter.Reload(UsageBudgets(p), prices)
	}
	if err != nil {
		s.log.Error("usage budgets not reloaded; the previous ones stay in force", fieldErr(err))
		return
	}
	s.meter.RefreshGauges()
}

// admit is the budget admission of a judged request about to be injected
// and sent (out: the outbound request, whose body the meter may rewrite).
// The ticket, if the request is metered, goes on d.ev; the caller ends it
// (the wrapped body's Close, or Ticket.Abort when no response comes).
func (s *Server) admit(out *http.Request, d *decision) *Error {
	if s.meter == nil || d.rule == nil {
		return nil
	}
	dialect := usage.Dialect(d.rule.Usage)
	if dialect == "" {
		dialect = usage.DefaultDialect(d.host)
	}
	if dialect == usage.DialectNone {
		return nil
	}
	t := usage.Target{Agent: d.agent, Rule: d.rule.Name, Credential: d.rule.Credential, Dialect: dialect,
		DefaultMaxTokens: int64(d.rule.DefaultMaxTokens)}
	tk, err := s.meter.Admit(out.Context(), t, out)
	if err != nil {
		return admitError(err, time.Now())
	}
	d.ev.ticket = tk
	return nil
}

// admitError renders a refusal of the meter: 429 BUDGET_EXCEEDED for a
// spent budget, 400 for an unreadable body, else 503 (fail closed: a
// budget that cannot be checked admits nothing).
func admitError(err error, now time.Time) *Error {
	var be *usage.BudgetError
	switch {
	case errors.As(err, &be):
		e := newError(http.StatusTooManyRequests, errcode.BudgetExceeded, be.Error(), be.Suggestion())
		e.RetryAfter = be.RetryAfter(now)
		e.NoRetry = !be.InFlight && e.RetryAfter > 60
		e.Budget = &errcode.Budget{Name: be.Budget, Unit: be.Unit, Limit: be.Limit, Used: be.Used, Pending: be.Pending,
			Request: be.Request, Reset: be.Reset.UTC().Format(time.RFC3339)}
		return e
	case errors.Is(err, usage.ErrRequestBody):
		return newError(http.StatusBadRequest, CodeBadRequest, "cannot read the request body",
			"send the whole request body; airlock reads LLM requests to reserve their budget")
	}
	return newError(http.StatusServiceUnavailable, errcode.Internal, "usage budgets cannot be checked: "+err.Error(),
		"check airlock's log and the usage state file; requests are refused until budgets can be checked")
}

// meterResponse is the meter's place in the observer chain, after the
// scrubber: it wraps the (scrubbed) body of a metered request.
func (s *Server) meterResponse(resp *http.Response) {
	if resp.Request == nil {
		return
	}
	if d := decisionFrom(resp.Request.Context()); d != nil && d.ev.ticket != nil {
		// a stream the relay could park (wait for the upstream holding no
		// buffer, one write per burst) stays parkable through the meter
		src, park := meterSource(resp.Body)
		d.ev.ticket.WrapWaiting(resp, src, park)
	}
}

// meterSource is what the relay's parkableSource finds under body
// (waitSource), as the meter needs it (the bodies themselves, not method
// values: no allocation); nil src when there is none to wait on.
func meterSource(body io.Reader) (src usage.Waiter, park usage.Parker) {
	sw, sr := waitSource(body)
	switch {
	case sw == nil:
		return nil, nil
	case sr == nil:
		return sw, nil // not a typed nil Parker
	}
	return sw, sr
}

// maxModelField bounds the model name on audit lines (an unpriced model
// is named as the provider reported it).
const maxModelField = 64

// Audit line fields of a metered request.
const (
	fieldLLMModel   = "llm_model"
	fieldLLMOutcome = "llm_usage"
	fieldLLMInput   = "llm_input_tokens"
	fieldLLMOutput  = "llm_output_tokens"
	fieldLLMCost    = "llm_cost_usd"
	// parts of input and output (the meter's own line says the same at
	// debug level: the audit line is the one canonical line)
	fieldLLMCached     = "llm_cached_input_tokens"
	fieldLLMCacheWrite = "llm_cache_write_tokens"
	fieldLLMReasoning  = "llm_reasoning_tokens"
)

// meterFields appends the usage of ev's ticket, if it ended, to an audit
// line. The parts of input and output (cached input, cache writes,
// reasoning) are named only when not zero: most answers have none, and
// every field costs the encoder of every audit line.
func meterFields(ev *event, fields []zap.Field) []zap.Field {
	r := ev.ticket.Result()
	if r == nil {
		return fields
	}
	model := r.Model
	if len(model) > maxModelField {
		model = model[:maxModelField]
	}
	fields = append(fields, zap.String(fieldLLMModel, model), zap.String(fieldLLMOutcome, string(r.Outcome)),
		zap.Int64(fieldLLMInput, r.Tokens.Input), zap.Int64(fieldLLMOutput, r.Tokens.Output),
		zap.Float64(fieldLLMCost, r.CostUSD))
	for _, part := range [...]struct {
		key string
		n   int64
	}{{fieldLLMCached, r.Tokens.CachedInput}, {fieldLLMCacheWrite, r.Tokens.CacheWrite}, {fieldLLMReasoning, r.Tokens.Reasoning}} {
		if part.n != 0 {
			fields = append(fields, zap.Int64(part.key, part.n))
		}
	}
	return fields
}

// closeMeter closes the meter's store once (Shutdown, after the drain, so
// the answers that ended last are saved).
func (s *Server) closeMeter() error {
	if s.meterStore == nil || s.meterClosed.Swap(true) {
		return nil
	}
	if err := s.meterStore.Close(); err != nil {
		return fmt.Errorf("close usage store: %w", err)
	}
	return nil
}
