package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/airlock/airlock/policy"
)

func limitedRule(name string, count int, per time.Duration, burst int) *policy.Rule {
	return &policy.Rule{Name: name, Action: policy.ActionAllow, RateLimit: &policy.RateLimit{Count: count, Per: per, Burst: burst}}
}

func TestRateLimitError(t *testing.T) {
	s := testServer()
	r := limitedRule("slow", 1, time.Hour, 1)
	if e := s.rateLimit("bot", r); e != nil {
		t.Fatalf("first request: %v", e)
	}
	e := s.rateLimit("bot", r)
	if e == nil || e.Status != http.StatusTooManyRequests || e.Code != CodeRateLimited || e.RetryAfter < 3500 || e.RetryAfter > 3600 {
		t.Fatalf("second request: %+v", e)
	}
	h := http.Header{}
	e.Header(h)
	if h.Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	if e := s.rateLimit("bot", &policy.Rule{Name: "free"}); e != nil {
		t.Errorf("rule without rate_limit: %v", e)
	}
}
