package proxy

import "github.com/prometheus/client_golang/prometheus"

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
}
