package proxy

import (
	"sync/atomic"
	"time"

	"github.com/airlock/airlock/proxy/internal/park"
	"github.com/airlock/airlock/proxy/internal/readmap"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are airlock's Prometheus collectors. Every label value comes from
// configuration (agent names, rule names, credential paths) or a fixed set
// of codes, never from raw request data, so cardinality stays bounded.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // agent, rule, decision, code, door, operation
	CredentialUses  *prometheus.CounterVec   // credential, agent, rule, door, operation
	UpstreamSeconds *prometheus.HistogramVec // rule
	Denials         *prometheus.CounterVec   // agent, reason
	CertCache       *prometheus.CounterVec   // result
	SecretEchoes    *prometheus.CounterVec   // credential
	OpenConns       prometheus.Gauge
	VaultSealed     prometheus.Gauge

	OAuth2TokenRequests *prometheus.CounterVec // credential, result (ok, rejected, error, malformed, unreachable)
	OAuth2TokenExpiry   *prometheus.GaugeVec   // credential

	PolicyReloads       *prometheus.CounterVec // result (success, error)
	VaultReloads        *prometheus.CounterVec // result (success, error)
	LastReloadSuccess   prometheus.Gauge       // unix seconds
	CredentialsExpiring prometheus.Gauge       // expiring within 7 days (or expired)
	AuditDropped        prometheus.Counter     // audit file lines dropped (queue full)
	LogDropped          prometheus.Counter     // log lines dropped by the AsyncWriter (queue full)

	series *readmap.Map[seriesKey, *reqSeries] // the per-request series, label-resolved once (record)
}

// NewMetrics creates the collectors on a fresh registry that also carries
// the Go and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		series:   readmap.New[seriesKey, *reqSeries](maxCachedSeries),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_requests_total", Help: "Requests and credential operations judged by airlock, by agent, rule, decision (inject, allow, tunnel, deny, error, would_deny, use, hand_out), code, door (proxy, rpc) and operation (proxy, http_request, http_header, retrieve, sign, encrypt, decrypt).",
		}, []string{"agent", "rule", "decision", "code", "door", "operation"}),
		CredentialUses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_credential_uses_total", Help: "Credentials used: injected into upstream requests, used for sign/encrypt/decrypt, or handed out (retrieve, http_header), by door and operation.",
		}, []string{"credential", "agent", "rule", "door", "operation"}),
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
		SecretEchoes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_secret_echoes_scrubbed_total", Help: "Echoes of an injected secret replaced in upstream responses, by credential path.",
		}, []string{"credential"}),
		OpenConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_open_connections", Help: "Agent connections currently open on the proxy port.",
		}),
		VaultSealed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_vault_sealed", Help: "1 when the vault is sealed (credentials unavailable).",
		}),
		OAuth2TokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_oauth2_token_requests_total", Help: "OAuth2 token endpoint requests by credential and result (ok, rejected, error, malformed, unreachable).",
		}, []string{"credential", "result"}),
		OAuth2TokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_oauth2_token_expiry_seconds", Help: "Unix time at which the cached OAuth2 access token of a credential expires.",
		}, []string{"credential"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.CredentialUses, m.UpstreamSeconds, m.Denials, m.CertCache, m.SecretEchoes, m.OpenConns, m.VaultSealed,
		m.OAuth2TokenRequests, m.OAuth2TokenExpiry,
	)
	m.LogDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_log_dropped_total", Help: "Log lines dropped because the asynchronous log queue was full or the sink failed.",
	})
	reg.MustRegister(m.LogDropped)
	m.registerOps(reg) // reloads, expiring credentials, audit file
	return m
}

// Reload results, the values of the result label of the reload counters.
const (
	resultSuccess = "success"
	resultError   = "error"
)

// registerOps creates the operations collectors (hot reload, expiring
// credentials, audit file) on reg. Both result values of the reload
// counters start at 0 so dashboards and alerts see them before any reload.
func (m *Metrics) registerOps(reg *prometheus.Registry) {
	m.PolicyReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_policy_reloads_total", Help: "Policy file reloads by result (success, error); on error the old policy stays in force.",
	}, []string{"result"})
	m.VaultReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_vault_reloads_total", Help: "Vault file reloads by result (success, error); on error the old vault stays in force.",
	}, []string{"result"})
	m.LastReloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "airlock_config_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful load of the policy or the vault.",
	})
	m.CredentialsExpiring = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "airlock_credentials_expiring", Help: "Credentials whose expires_at is within 7 days (expired ones included).",
	})
	m.AuditDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airlock_audit_dropped_total", Help: "Audit file lines dropped because the write queue was full or the file failed.",
	})
	for _, r := range []string{resultSuccess, resultError} {
		m.PolicyReloads.WithLabelValues(r)
		m.VaultReloads.WithLabelValues(r)
	}
	reg.MustRegister(m.PolicyReloads, m.VaultReloads, m.LastReloadSuccess, m.CredentialsExpiring, m.AuditDropped)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "airlock_parked_connections", Help: "Sockets waiting in the poller without a goroutine: idle agent connections (for their next request), quiet streams (for their upstream) and agents watched for a hang-up during a long request.",
	}, func() float64 { return float64(park.Parked()) }))
}

// Per-request series. WithLabelValues hashes and checks every label value
// and takes the vector's lock on each call; record needs up to four series
// per request, so it resolves them once per label combination and keeps
// them here. Labels come from configuration and a fixed set of codes, so
// the combinations are few; the cache is still bounded (cleared when
// full: reloads can leave combinations behind that no request uses any
// more). The vectors are never reset or pruned, so a cached series is
// always the one /metrics exports.

// maxCachedSeries bounds the series cache.
const maxCachedSeries = 4096

// seriesKey is one combination of record's label values.
type seriesKey struct {
	agent, rule, decision, code, door, op string
	credential                            string // "": the request used no credential
	denied                                bool
}

// reqSeries are the series one request of a seriesKey adds to.
type reqSeries struct {
	requests prometheus.Counter
	denials  prometheus.Counter // nil: not a denial
	uses     prometheus.Counter // nil: no credential used
	// upstream is the rule's upstream latency histogram, resolved on the
	// first observation (a rule's series appears once it has one).
	upstream atomic.Pointer[prometheus.Observer]
}

// observeUpstream adds d to the upstream latency histogram of rule.
func (rs *reqSeries) observeUpstream(m *Metrics, rule string, d time.Duration) {
	o := rs.upstream.Load()
	if o == nil {
		h := m.UpstreamSeconds.WithLabelValues(rule)
		rs.upstream.Store(&h)
		o = &h
	}
	(*o).Observe(d.Seconds())
}

// requestSeries returns the series of k, resolving them on first use
// (lock-free once resolved: readmap).
func (m *Metrics) requestSeries(k seriesKey) *reqSeries {
	return m.series.Get(k, func() *reqSeries {
		rs := &reqSeries{
			requests: m.Requests.WithLabelValues(k.agent, k.rule, k.decision, k.code, k.door, k.op),
		}
		if k.denied {
			rs.denials = m.Denials.WithLabelValues(k.agent, k.code)
		}
		if k.credential != "" {
			rs.uses = m.CredentialUses.WithLabelValues(k.credential, k.agent, k.rule, k.door, k.op)
		}
		return rs
	})
}
