package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are airlock's Prometheus collectors. Every label value comes from
// configuration (agent names, rule names, credential paths) or a fixed set
// of codes, never from raw request data, so cardinality stays bounded.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // agent, rule, decision, code
	CredentialUses  *prometheus.CounterVec   // credential, agent, rule
	UpstreamSeconds *prometheus.HistogramVec // rule
	Denials         *prometheus.CounterVec   // agent, reason
	CertCache       *prometheus.CounterVec   // result
	OpenConns       prometheus.Gauge
	VaultSealed     prometheus.Gauge
}

// NewMetrics creates the collectors on a fresh registry that also carries
// the Go and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_requests_total", Help: "Requests judged by airlock, by agent, rule, decision (inject, allow, tunnel, deny, error) and code.",
		}, []string{"agent", "rule", "decision", "code"}),
		CredentialUses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_credential_uses_total", Help: "Credentials injected into upstream requests.",
		}, []string{"credential", "agent", "rule"}),
		UpstreamSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_upstream_duration_seconds",
			Help:    "Time from forwarding a request to the upstream's response headers.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"rule"}),
		Denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_denials_total", Help: "Requests refused, by agent and reason code.",
		}, []string{"agent", "reason"}),
		CertCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_cert_cache_total", Help: "Leaf certificate cache lookups by result (hit, miss).",
		}, []string{"result"}),
		OpenConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_open_connections", Help: "Agent connections currently open on the proxy port.",
		}),
		VaultSealed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_vault_sealed", Help: "1 when the vault is sealed (credentials unavailable).",
		}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.CredentialUses, m.UpstreamSeconds, m.Denials, m.CertCache, m.OpenConns, m.VaultSealed,
	)
	return m
}
