package state

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// rule is a rule's rate_limit as the proxy hands it to the store (count per
// per, burst defaulting to the count: proxy.limitOf).
type rule struct {
	name  string
	limit rate.Limit
	burst int
}

func limitedRule(name string, count int, per time.Duration, burst int) rule {
	if burst <= 0 {
		burst = count
	}
	return rule{name, rate.Limit(float64(count) / per.Seconds()), burst}
}

// limits is the store as the proxy's rate-limit step uses it.
type limits struct{ m *Memory }

func (l *limits) take(agent string, r rule, now time.Time) (bool, time.Duration) {
	if l.m == nil {
		l.m = NewMemory()
	}
	return l.m.AllowAt(agent+"\x00"+r.name, r.limit, r.burst, now)
}

func TestRateLimitBucket(t *testing.T) {
	var l limits
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
	var l limits
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
