package source

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the credential source series. Labels are source names from
// the vault and a fixed set of results: never keys or values.
type Metrics struct {
	fetches  *prometheus.CounterVec   // airlock_source_fetches_total{source,result}
	duration *prometheus.HistogramVec // airlock_source_fetch_duration_seconds{source}
	age      *prometheus.GaugeVec     // airlock_source_cache_age_seconds{source}
	stale    *prometheus.CounterVec   // airlock_source_stale_served_total{source}
}

// Fetch results (the result label).
const (
	ResultOK          = "ok"
	ResultNotFound    = "not_found"
	ResultAuth        = "auth"
	ResultExpired     = "expired"
	ResultUnavailable = "unavailable"
)

// NewMetrics creates the series and registers them with reg (nil: not
// registered, for tests). Registering twice with one registry returns the
// already registered collectors.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_source_fetches_total",
			Help: "Fetches from external credential sources, by source and result (ok, not_found, auth, expired, unavailable)."},
			[]string{"source", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "airlock_source_fetch_duration_seconds",
			Help: "Duration of fetches from external credential sources.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 9)},
			[]string{"source"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "airlock_source_cache_age_seconds",
			Help: "Age of the cached value last served, by source."}, []string{"source"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_source_stale_served_total",
			Help: "Cached values served inside the stale window after a failed refresh, by source."}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.fetches, err = register(reg, m.fetches)
	if err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.age, err = register(reg, m.age); err != nil {
		return nil, err
	}
	if m.stale, err = register(reg, m.stale); err != nil {
		return nil, err
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old, nil
			}
		}
		return c, err
	}
	return c, nil
}
