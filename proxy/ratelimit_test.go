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

func TestRateLimitBucket(t *testing.T) {
	var l rateLimits
	now := time.Unix(1000, 0)
	r := limitedRule("r", 60, time.Minute, 2)
	for i := range 2 {
		if ok, _ := l.take("bot", r, now); !ok {
			t.Fatalf("request %d refused inside the burst", i)
		}
	}
	ok, wait := l.take("bot", r, now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("third request: ok %v wait %v, want refused with wait <= 1s", ok, wait)
	}
	if ok, _ := l.take("other", r, now); !ok {
		t.Error("another agent shares the bucket")
	}
	if ok, _ := l.take("bot", limitedRule("r2", 60, time.Minute, 2), now); !ok {
		t.Error("another rule shares the bucket")
	}
	if ok, _ := l.take("bot", r, now.Add(time.Second)); !ok {
		t.Error("token not refilled after 1s at 60/m")
	}
}

// A reload that changes the rate updates the bucket in place: the agent
// does not get a fresh burst.
func TestRateLimitSurvivesReload(t *testing.T) {
	var l rateLimits
	now := time.Unix(1000, 0)
	old := limitedRule("r", 2, time.Hour, 0) // burst defaults to the count
	for range 2 {
		l.take("bot", old, now)
	}
	same := limitedRule("r", 2, time.Hour, 0) // reloaded policy, same rule
	if ok, _ := l.take("bot", same, now); ok {
		t.Fatal("reload with the same limit reset the bucket")
	}
	faster := limitedRule("r", 3600, time.Hour, 5)
	if ok, _ := l.take("bot", faster, now); ok {
		t.Fatal("changed limit reset the tokens")
	}
	if ok, _ := l.take("bot", faster, now.Add(1100*time.Millisecond)); !ok {
		t.Error("new rate (1/s) not applied")
	}
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
