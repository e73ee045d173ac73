package approval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var botReq = Request{Agent: "bot", Rule: "openai", Method: "POST", Host: "api.openai.com", Path: "/v1/chat/completions"}

// newQueue builds a queue on a local store at dir (or memory when "").
func newQueue(t *testing.T, path string, mod func(*Config)) (*Queue, *LocalStore, *Metrics) {
	t.Helper()
	st, err := NewLocalStore(path)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	cfg := Config{Store: st, Timeout: 10 * time.Second, Metrics: m}
	if mod != nil {
		mod(&cfg)
	}
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q, st, m
}

// waitPending polls until n entries are pending with waiters waiters in total.
func waitPending(t *testing.T, q *Queue, n, waiters int) []Pending {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, err := q.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := 0
		for _, p := range ps {
			w += p.Waiters
		}
		if len(ps) == n && w == waiters {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d entries, %d waiters; want %d, %d", len(ps), w, n, waiters)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type result struct {
	d   Decision
	err error
	at  time.Time
}

func TestConcurrentWaitersShareOneEntry(t *testing.T) {
	q, _, m := newQueue(t, "", nil)
	const n = 20
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			d, err := q.Wait(context.Background(), botReq)
			results <- result{d, err, time.Now()}
		}()
	}
	ps := waitPending(t, q, 1, n)
	if got := testutil.ToFloat64(m.pending); got != 1 {
		t.Fatalf("approvals_pending = %v, want 1", got)
	}
	start := time.Now()
	if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approve: true, Remember: RememberOnce, Approver: "test"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := <-results
		if r.err != nil || !r.d.Approved || r.d.ID != ps[0].ID {
			t.Fatalf("waiter %d: %+v, %v", i, r.d, r.err)
		}
		if r.at.Sub(start) > time.Second {
			t.Fatalf("waiter released %v after the approval (want < 1s)", r.at.Sub(start))
		}
	}
	if got := testutil.ToFloat64(m.Total.WithLabelValues(ResultApproved)); got != 1 {
		t.Fatalf("approvals_total{approved} = %v, want 1 (one entry)", got)
	}
	if got := testutil.ToFloat64(m.pending); got != 0 {
		t.Fatalf("approvals_pending after the decision = %v", got)
	}
	// once: the next request is held again.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.Wait(ctx, botReq); !errors.Is(err, ErrCancelled) {
		t.Fatalf("after a once approval: %v, want held (cancelled)", err)
	}
}

func TestDeny(t *testing.T) {
	var outcomes []Outcome
	q, _, m := newQueue(t, "", func(c *Config) { c.OnOutcome = func(o Outcome) { outcomes = append(outcomes, o) } })
	done := make(chan result, 1)
	go func() { d, err := q.Wait(context.Background(), botReq); done <- result{d: d, err: err} }()
	ps := waitPending(t, q, 1, 1)
	if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approver: "cli:alice", Reason: "not today"}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	var de *DeniedError
	if !errors.As(r.err, &de) || !errors.Is(r.err, ErrDenied) || de.ID != ps[0].ID || de.Reason != "not today" || de.Approver != "cli:alice" {
		t.Fatalf("Wait = %v, want DeniedError naming %s", r.err, ps[0].ID)
	}
	if got := testutil.ToFloat64(m.Total.WithLabelValues(ResultDenied)); got != 1 {
		t.Fatalf("denied = %v", got)
	}
	if len(outcomes) != 1 || outcomes[0].Result != ResultDenied || outcomes[0].Decision.Approver != "cli:alice" || outcomes[0].Pending.Agent != "bot" {
		t.Fatalf("audit hook got %+v", outcomes)
	}
	if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approve: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second decision: %v, want ErrNotFound", err)
	}
}

func TestTimeout(t *testing.T) {
	var outcomes []Outcome
	var mu sync.Mutex
	q, _, m := newQueue(t, "", func(c *Config) {
		c.Timeout = 100 * time.Millisecond
		c.OnOutcome = func(o Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
	})
	start := time.Now()
	_, err := q.Wait(context.Background(), botReq)
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.ID == "" {
		t.Fatalf("Wait = %v, want TimeoutError with an id", err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("held %v, want ~100ms", el)
	}
	waitPending(t, q, 0, 0)
	if got := testutil.ToFloat64(m.Total.WithLabelValues(ResultTimeout)); got != 1 {
		t.Fatalf("timeout = %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) != 1 || outcomes[0].Result != ResultTimeout || outcomes[0].Pending.ID != te.ID {
		t.Fatalf("outcomes = %+v", outcomes)
	}
}

func TestCancelLastWaiterCancelsEntry(t *testing.T) {
	q, _, m := newQueue(t, "", nil)
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := q.Wait(ctx1, botReq); errs <- err }()
	go func() { _, err := q.Wait(ctx2, botReq); errs <- err }()
	waitPending(t, q, 1, 2)
	cancel1()
	if err := <-errs; !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	waitPending(t, q, 1, 1) // the other waiter keeps the entry
	cancel2()
	<-errs
	waitPending(t, q, 0, 0)
	if got := testutil.ToFloat64(m.Total.WithLabelValues(ResultCancelled)); got != 1 {
		t.Fatalf("cancelled = %v, want 1", got)
	}
}

func TestKeys(t *testing.T) {
	q, _, _ := newQueue(t, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reqs := []Request{
		botReq,
		{Agent: "bot", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/v1/models"}, // same (agent, rule)
		{Agent: "other", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/"},
		{Agent: "bot", Rule: "github", Method: "GET", Host: "api.github.com", Path: "/"},
		{Agent: "bot", Method: "GET", Host: "example.com", Path: "/a", Unmatched: true},
		{Agent: "bot", Method: "POST", Host: "example.com", Path: "/b", Unmatched: true}, // same (agent, host)
		{Agent: "bot", Method: "GET", Host: "example.org", Path: "/a", Unmatched: true},
	}
	for _, r := range reqs {
		go q.Wait(ctx, r)
	}
	waitPending(t, q, 5, 7)
}

func TestRememberedSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.json")
	q, _, _ := newQueue(t, path, nil)
	always := Request{Agent: "bot", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/v1/models"}
	hour := Request{Agent: "bot", Rule: "github", Method: "GET", Host: "api.github.com", Path: "/user"}
	session := Request{Agent: "bot", Rule: "slack", Method: "GET", Host: "slack.com", Path: "/api"}
	for req, remember := range map[Request]string{always: RememberAlways, hour: "1h", session: RememberSession} {
		approveNext(t, q, req, remember)
		d, err := q.Wait(context.Background(), req)
		if err != nil || !d.Remembered {
			t.Fatalf("%s: second request: %+v, %v; want remembered", remember, d, err)
		}
	}
	q.Close()
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("remembered file: %v %v", info, err)
	}

	// "Restart": a new store and queue from the same file.
	q2, _, _ := newQueue(t, path, nil)
	for _, req := range []Request{always, hour} {
		if d, err := q2.Wait(context.Background(), req); err != nil || !d.Remembered || d.Approver != "test" {
			t.Fatalf("after restart %s: %+v, %v", req.Rule, d, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := q2.Wait(ctx, session); !errors.Is(err, ErrCancelled) {
		t.Fatalf("session approval after restart: %v, want held again", err)
	}

	// The 1h approval ends after an hour.
	later := time.Now().Add(61 * time.Minute)
	q3, _, _ := newQueue(t, path, func(c *Config) { c.Now = func() time.Time { return later } })
	if d, err := q3.Wait(context.Background(), always); err != nil || !d.Remembered {
		t.Fatalf("always after 61m: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := q3.Wait(ctx2, hour); !errors.Is(err, ErrCancelled) {
		t.Fatalf("1h approval after 61m: %v, want held", err)
	}
}

// approveNext holds req and approves it with remember.
func approveNext(t *testing.T, q *Queue, req Request, remember string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := q.Wait(context.Background(), req); done <- err }()
	ps := waitPending(t, q, 1, 1)
	if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approve: true, Remember: remember, Approver: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestBadRememberDecidesNothing(t *testing.T) {
	q, _, _ := newQueue(t, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Wait(ctx, botReq)
	ps := waitPending(t, q, 1, 1)
	for _, bad := range []string{"forever", "-1h", "0s", "1 h"} {
		if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approve: true, Remember: bad}); !errors.Is(err, ErrBadRemember) {
			t.Fatalf("remember %q: %v, want ErrBadRemember", bad, err)
		}
	}
	waitPending(t, q, 1, 1)
}

func TestCorruptRememberedFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := NewLocalStore(path); err == nil {
		t.Fatal("corrupt file accepted")
	}
}

// TestDecisionOnOtherReplica: two queues on one store (as two replicas on
// one Redis): a decision taken through B releases the waiter held by A.
func TestDecisionOnOtherReplica(t *testing.T) {
	st, _ := NewLocalStore("")
	a, _ := New(Config{Store: st, Timeout: 10 * time.Second})
	b, _ := New(Config{Store: st, Timeout: 10 * time.Second})
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { _, err := a.Wait(context.Background(), botReq); done <- err }()
	ps := waitPending(t, b, 1, 1)
	if _, err := b.Decide(context.Background(), ps[0].ID, Verdict{Approve: true, Remember: RememberOnce}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("waiter on replica A not released within 1s")
	}
}

func TestRefusal(t *testing.T) {
	cases := map[string]struct {
		err        error
		code, want string
		ok         bool
	}{
		"denied":    {&DeniedError{ID: "ap-1", Approver: "cli:alice", Reason: "no"}, CodeDenied, "approval ap-1 denied by cli:alice: no", true},
		"timeout":   {fmt.Errorf("wrap: %w", &TimeoutError{ID: "ap-2", After: 2 * time.Minute}), CodeTimeout, "approval ap-2: nobody decided within 2m0s", true},
		"cancelled": {fmt.Errorf("x: %w", ErrCancelled), "", "", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, detail, hint, ok := Refusal(tc.err)
			if code != tc.code || detail != tc.want || ok != tc.ok || (ok && !strings.Contains(hint, "airlock approvals approve")) {
				t.Fatalf("Refusal = %q %q %q %v", code, detail, hint, ok)
			}
		})
	}
}
