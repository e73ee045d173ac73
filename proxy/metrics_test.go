package proxy

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// TestRecordSeries checks that the cached series count exactly what
// WithLabelValues would: each label combination its own series, denials
// and credential uses only where they apply, and the same numbers after
// the cache is cleared for being full.
func TestRecordSeries(t *testing.T) {
	s := &Server{metrics: NewMetrics(), log: zap.NewNop()}
	inject := event{agent: "bot", rule: "openai", credential: "openai/key", inject: "bearer", method: "GET",
		host: "api.openai.com", port: 443, path: "/v1/x", decision: decisionInject, status: 200}
	denied := event{agent: "bot", method: "GET", host: "evil.example", port: 443, decision: decisionDeny, code: CodeAccessDenied, status: 403}
	other := inject
	other.agent = "other"
	for range 3 {
		for _, ev := range []event{inject, denied, other} {
			e := ev
			s.record(&e)
		}
	}
	m := s.metrics
	cases := map[string]struct {
		got  float64
		want float64
	}{
		"requests inject bot":   {testutil.ToFloat64(m.Requests.WithLabelValues("bot", "openai", decisionInject, "OK", "proxy", "proxy")), 3},
		"requests inject other": {testutil.ToFloat64(m.Requests.WithLabelValues("other", "openai", decisionInject, "OK", "proxy", "proxy")), 3},
		"requests deny":         {testutil.ToFloat64(m.Requests.WithLabelValues("bot", "none", decisionDeny, CodeAccessDenied, "proxy", "proxy")), 3},
		"denials":               {testutil.ToFloat64(m.Denials.WithLabelValues("bot", CodeAccessDenied)), 3},
		"uses bot":              {testutil.ToFloat64(m.CredentialUses.WithLabelValues("openai/key", "bot", "openai", "proxy", "proxy")), 3},
		"uses other":            {testutil.ToFloat64(m.CredentialUses.WithLabelValues("openai/key", "other", "openai", "proxy", "proxy")), 3},
	}
	for name, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.Denials); n != 1 {
		t.Errorf("%d denial series, want 1 (an injected request is no denial)", n)
	}
	if n := testutil.CollectAndCount(m.UpstreamSeconds); n != 0 {
		t.Errorf("%d upstream latency series before any upstream answered, want 0", n)
	}

	// Fill the cache past its bound: it is cleared, the counts go on.
	for i := range maxCachedSeries + 10 {
		s.metrics.requestSeries(seriesKey{agent: "a" + itoa(i), rule: "r", decision: decisionAllow, code: "OK", door: "proxy", op: "proxy"})
	}
	if n := m.series.Len(); n > maxCachedSeries {
		t.Fatalf("series cache holds %d entries, bound %d", n, maxCachedSeries)
	}
	e := inject
	e.upstream = 1
	s.record(&e)
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("bot", "openai", decisionInject, "OK", "proxy", "proxy")); got != 4 {
		t.Fatalf("requests after the cache was cleared = %v, want 4", got)
	}
	if n := testutil.CollectAndCount(m.UpstreamSeconds); n != 1 {
		t.Fatalf("%d upstream latency series, want 1", n)
	}
}
