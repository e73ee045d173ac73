package usage

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock/airlock/proxy/internal/readmap"
)

// Metrics are the meter's Prometheus collectors. Label values come from
// configuration (agent, rule, credential and budget names) or from the
// price table (model; others are "other"), so cardinality stays bounded.
type Metrics struct {
	Tokens           *prometheus.CounterVec // agent, rule, credential, model, kind
	CostUSD          *prometheus.CounterVec // agent, rule, credential, model
	Requests         *prometheus.CounterVec // agent, rule, credential, model, outcome
	BudgetUsedRatio  *prometheus.GaugeVec   // budget
	BudgetRejections *prometheus.CounterVec // budget
	BudgetWarnings   *prometheus.CounterVec // budget

	// series caches the counters of each label set: lock-free once
	// resolved (readmap; no boxing of the key either, unlike a sync.Map).
	series *readmap.Map[seriesKey, *series]
}

// maxCachedSeries bounds the series cache (label values are bounded by the
// configuration and the price table; this is a second fence).
const maxCachedSeries = 1024

type seriesKey struct {
	agent, rule, credential, model string
	outcome                        Outcome
}

// series are the counters one metered request adds to. tokens and cost
// are nil for OutcomeNone (no usage: those series are not created).
type series struct {
	requests prometheus.Counter
	tokens   [5]prometheus.Counter // input, output, cached_input, cache_write, reasoning
	cost     prometheus.Counter
}

var tokenKinds = [5]string{KindInput, KindOutput, KindCachedInput, KindCacheWrite, KindReasoning}

// seriesOf returns (creating once) the counters of a label set, so a
// request costs no label hashing or lookups in the vectors.
func (m *Metrics) seriesOf(t Target, model string, outcome Outcome) *series {
	return m.series.Get(seriesKey{t.Agent, t.Rule, t.Credential, model, outcome}, func() *series {
		sr := &series{requests: m.Requests.WithLabelValues(t.Agent, t.Rule, t.Credential, model, string(outcome))}
		if outcome != OutcomeNone {
			for i, kind := range tokenKinds {
				sr.tokens[i] = m.Tokens.WithLabelValues(t.Agent, t.Rule, t.Credential, model, kind)
			}
			sr.cost = m.CostUSD.WithLabelValues(t.Agent, t.Rule, t.Credential, model)
		}
		return sr
	})
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// Token kinds of airlock_llm_tokens_total. cached_input and cache_write
// are parts of input, reasoning is part of output.
const (
	KindInput       = "input"
	KindOutput      = "output"
	KindCachedInput = "cached_input"
	KindCacheWrite  = "cache_write"
	KindReasoning   = "reasoning"
)

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	who := []string{"agent", "rule", "credential", "model"}
	m := &Metrics{
		series: readmap.New[seriesKey, *series](maxCachedSeries),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_llm_tokens_total",
			Help: "LLM tokens counted from the providers' usage, by kind (cached_input and cache_write are part of input, reasoning part of output)."},
			append(who[:4:4], "kind")),
		CostUSD: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_llm_cost_usd_total",
			Help: "LLM cost in USD from the price table (models outside the table add nothing)."}, who),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_llm_requests_total",
			Help: "Metered LLM requests by outcome (ok, partial, no_usage)."}, append(who[:4:4], "outcome")),
		BudgetUsedRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "airlock_budget_used_ratio",
			Help: "Committed usage of a budget's current window over its limit."}, []string{"budget"}),
		BudgetRejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_budget_rejections_total",
			Help: "Requests refused because a budget had no room."}, []string{"budget"}),
		BudgetWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_budget_warnings_total",
			Help: "Budget windows that crossed their warn_at fraction."}, []string{"budget"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.Tokens, m.CostUSD, m.Requests, m.BudgetUsedRatio, m.BudgetRejections, m.BudgetWarnings} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("usage metrics: %w", err)
		}
	}
	return m, nil
}
