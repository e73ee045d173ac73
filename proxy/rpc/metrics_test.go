package rpc

import (
	"github.com/airlock/airlock/proxy/errcode"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func metricValue(t *testing.T, h *harness, agent, method, code string) float64 {
	t.Helper()
	return testutil.ToFloat64(h.srv.metrics.requests.WithLabelValues(agent, method, code))
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	fc.ok("list", fc.with(nil), nil)
	fc.fail("retrieve", fc.with(map[string]any{"path": "api/token"}), CodeAccessDenied)
	fc.ok("authenticate", map[string]any{"agent_name": "made-up-name"}, nil)
	fc.sendRaw([]byte(`{"id":1,"method":"made-up-method"}`))
	if _, err := fc.recv(); err != nil {
		t.Fatal(err)
	}
	want := map[[3]string]float64{
		{"bot", "authenticate", "OK"}:              1,
		{"bot", "challenge_response", "OK"}:        1,
		{"bot", "list", "OK"}:                      1,
		{"bot", "retrieve", CodeAccessDenied}:      1,
		{"unknown", "authenticate", "OK"}:          1,
		{"unknown", "invalid", CodeInvalidRequest}: 1,
	}
	for l, n := range want {
		if got := metricValue(t, h, l[0], l[1], l[2]); got != n {
			t.Errorf("%v = %v, want %v", l, got, n)
		}
	}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"bot": true, "other": true, "off": true, "unknown": true,
		"authenticate": true, "challenge_response": true, "list": true, "retrieve": true,
		"release_lease": true, "use": true, "invalid": true, "OK": true}
	for code := range errcode.Status {
		allowed[code] = true
	}
	for _, mf := range mfs {
		if mf.GetName() != "airlock_rpc_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !allowed[lp.GetValue()] {
					t.Errorf("unbounded label %s=%q", lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

func TestAuditLine(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	fc.ok("use", useParamsFor(fc, "signing/key", "sign", map[string]any{"data": "x"}), nil)
	fc.fail("use", useParamsFor(fc, "secret/other", "sign", map[string]any{"data": "x"}), CodeAccessDenied)
	lines := h.logs.FilterMessage("rpc").FilterField(fieldString("method", "use")).All()
	if len(lines) != 2 {
		t.Fatalf("%d audit lines for use, want 2", len(lines))
	}
	ok, deny := lines[0].ContextMap(), lines[1].ContextMap()
	for k, v := range map[string]any{"agent": "bot", "operation": "sign", "credential": "signing/key",
		"code": "OK", "action": "allow", "door": "rpc"} {
		if ok[k] != v {
			t.Errorf("ok line %s = %v, want %v", k, ok[k], v)
		}
	}
	if _, has := ok["duration_ms"]; !has {
		t.Error("no duration_ms")
	}
	if deny["code"] != CodeAccessDenied || deny["action"] != "deny" || lines[1].Level.String() != "warn" {
		t.Errorf("deny line %v at %s", deny, lines[1].Level)
	}
	h.assertNoSecretsLogged()
}

func TestMetricsSharedRegistry(t *testing.T) {
	h := newHarness(t, Options{})
	second := New(h.b, Options{Registerer: h.reg}) // e.g. a TCP and a socket server
	if second.metrics.requests != h.srv.metrics.requests {
		t.Fatal("second server did not reuse the registered counter")
	}
}
