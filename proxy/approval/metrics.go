package approval

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the queue's Prometheus series.
type Metrics struct {
	// Total counts entries by how they ended and remembered hits:
	// airlock_approvals_total{result}.
	Total *prometheus.CounterVec
	// Webhook counts notifier deliveries: airlock_approval_webhook_total{result}
	// (delivered, retried, failed, dropped).
	Webhook *prometheus.CounterVec

	pending prometheus.GaugeFunc
	q       atomic.Pointer[Queue] // the queue the pending gauge reads
}

// NewMetrics registers the approval series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_approvals_total", Help: "Approval entries by result, and requests passed by a remembered approval.",
		}, []string{"result"}),
		Webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_approval_webhook_total", Help: "Approval webhook deliveries by result.",
		}, []string{"result"}),
	}
	for _, r := range []string{ResultApproved, ResultDenied, ResultTimeout, ResultCancelled, ResultRemembered} {
		m.Total.WithLabelValues(r)
	}
	m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "airlock_approvals_pending", Help: "Requests held for approval (pending entries).",
	}, func() float64 {
		q := m.q.Load()
		if q == nil {
			return 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ps, err := q.cfg.Store.List(ctx)
		if err != nil {
			return 0
		}
		return float64(len(ps))
	})
	reg.MustRegister(m.Total, m.Webhook, m.pending)
	return m
}

// watch points the pending gauge at q.
func (m *Metrics) watch(q *Queue) { m.q.Store(q) }
