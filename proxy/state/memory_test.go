package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestTokens(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	if _, ok, _ := m.Token(ctx, "k"); ok {
		t.Fatal("token in an empty store")
	}
	exp := time.Unix(2000, 0)
	_ = m.PutToken(ctx, "k", Token{Value: "tok1", Expiry: exp})
	if tok, ok, _ := m.Token(ctx, "k"); !ok || tok.Value != "tok1" || !tok.Expiry.Equal(exp) {
		t.Fatalf("got %+v %v", tok, ok)
	}
	_ = m.DropToken(ctx, "k", "other") // refused token is not the current one: kept
	if _, ok, _ := m.Token(ctx, "k"); !ok {
		t.Fatal("DropToken of another value dropped the token")
	}
	_ = m.DropToken(ctx, "k", "tok1")
	if _, ok, _ := m.Token(ctx, "k"); ok {
		t.Fatal("DropToken kept the token")
	}
	unlock, ok, _ := m.LockRefresh(ctx, "k", time.Minute)
	if !ok {
		t.Fatal("first lock refused")
	}
	if _, ok, _ := m.LockRefresh(ctx, "k", time.Minute); ok {
		t.Fatal("second holder got the refresh lock")
	}
	unlock()
	if _, ok, _ := m.LockRefresh(ctx, "k", time.Minute); !ok {
		t.Fatal("lock not released")
	}
}

func TestBudgetsReserveCommitPersist(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "state.json")
	m := NewMemory()
	if err := m.Persist(file); err != nil {
		t.Fatal(err)
	}
	id, err := m.Reserve(ctx, "team/2026-05", 60, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "team/2026-05", 50, 100, time.Minute); !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("over-reservation: %v", err)
	}
	if err := m.Commit(ctx, "team/2026-05", id, 30); err != nil { // the real cost was lower
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "team/2026-05", 50, 100, time.Minute); err != nil {
		t.Fatalf("after commit of 30: %v", err)
	}
	// A restart keeps what was spent, not what was only reserved.
	m2 := NewMemory()
	if err := m2.Persist(file); err != nil {
		t.Fatal(err)
	}
	if spent, reserved, _ := m2.Spent(ctx, "team/2026-05"); spent != 30 || reserved != 0 {
		t.Fatalf("after restart: spent %d reserved %d, want 30, 0", spent, reserved)
	}
	// Reservations expire.
	m2.now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := m2.Reserve(ctx, "x", 10, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	m2.now = func() time.Time { return time.Now().Add(3 * time.Hour) }
	if _, reserved, _ := m2.Spent(ctx, "x"); reserved != 0 {
		t.Fatalf("expired reservation still held: %d", reserved)
	}
}

func TestPersistRefusesCorruptFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := NewMemory().Persist(file); err == nil {
		t.Fatal("corrupt state file accepted")
	}
}
