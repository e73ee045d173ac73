package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestApprovalAcrossReplicas: requests on A and B share one pending
// entry; a decision through B releases A's waiter within 1 s.
func TestApprovalAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 3, Options{})
	a, b, c := s[0], s[1], s[2]
	ctx := context.Background()
	id, created, err := a.Pend(ctx, "research-bot/openai", []byte(`{"agent":"research-bot"}`), time.Minute)
	if err != nil || !created {
		t.Fatalf("pend on A: %q %v %v", id, created, err)
	}
	id2, created2, err := b.Pend(ctx, "research-bot/openai", []byte(`{}`), time.Minute)
	if err != nil || created2 || id2 != id {
		t.Fatalf("pend on B: %q %v %v, want A's entry %q shared", id2, created2, err, id)
	}
	list, err := c.ListPending(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id || list[0].Replica != "replica-0" || string(list[0].Payload) != `{"agent":"research-bot"}` {
		t.Fatalf("list on C: %+v %v", list, err)
	}

	got := make(chan time.Time, 1)
	var decision Decision
	go func() {
		d, err := a.Wait(ctx, id)
		if err != nil {
			t.Error(err)
		}
		decision = d
		got <- time.Now()
	}()
	time.Sleep(100 * time.Millisecond) // let A wait
	at := time.Now()
	if err := b.Decide(ctx, id, Decision{Approved: true, Remember: "1h", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	select {
	case done := <-got:
		if lat := done.Sub(at); lat > time.Second {
			t.Errorf("A released %v after B's decision, want < 1s", lat)
		} else {
			t.Logf("A released %v after B's decision", lat)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("A not released within 2s")
	}
	if !decision.Approved || decision.By != "alice" || decision.Replica != "replica-1" {
		t.Errorf("decision %+v", decision)
	}
	if err := c.Decide(ctx, id, Decision{}); !errors.Is(err, ErrNotPending) {
		t.Errorf("second decision: %v, want ErrNotPending", err)
	}
	if list, _ := c.ListPending(ctx); len(list) != 0 {
		t.Errorf("still listed after decision: %+v", list)
	}
	// A later request for the same key is a new entry.
	if id3, created, _ := c.Pend(ctx, "research-bot/openai", nil, time.Minute); !created || id3 == id {
		t.Errorf("pend after decision: %q created=%v", id3, created)
	}
}

// TestApprovalExpiresAndCancel: an undecided entry that expires ends its
// waiters with ErrNotPending; Cancel wakes them with a cancelled decision.
func TestApprovalExpiresAndCancel(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 2, Options{})
	ctx := context.Background()
	id, _, err := s[0].Pend(ctx, "bot/x", nil, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := s[1].Wait(wctx, id); !errors.Is(err, ErrNotPending) {
		t.Errorf("expired entry: %v, want ErrNotPending", err)
	}
	id, _, _ = s[0].Pend(ctx, "bot/y", nil, time.Minute)
	go func() { time.Sleep(50 * time.Millisecond); _ = s[0].Cancel(ctx, id) }()
	d, err := s[1].Wait(wctx, id)
	if err != nil || d.Approved || d.Reason != "cancelled" {
		t.Errorf("cancelled: %+v %v", d, err)
	}
}

// TestRememberedApprovals: remembered answers are shared and expire.
func TestRememberedApprovals(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 2, Options{})
	ctx := context.Background()
	if err := s[0].Remember(ctx, "bot/openai", Decision{Approved: true, Remember: "1h", By: "alice"}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s[0].Remember(ctx, "bot/github", Decision{Approved: true, Remember: "always"}, 0); err != nil {
		t.Fatal(err)
	}
	if d, ok, err := s[1].Remembered(ctx, "bot/openai"); !ok || err != nil || d.By != "alice" {
		t.Fatalf("remembered on B: %+v %v %v", d, ok, err)
	}
	waitFor(t, 2*time.Second, "remembered approval expires", func() error {
		if _, ok, _ := s[1].Remembered(ctx, "bot/openai"); ok {
			return errors.New("still remembered")
		}
		return nil
	})
	if ttl := r.client().PTTL(ctx, s[0].apprKey("mem", "bot/github")).Val(); ttl != -1 {
		t.Errorf("always: ttl %v, want none", ttl)
	}
	_ = s[1].Forget(ctx, "bot/github")
	if _, ok, _ := s[0].Remembered(ctx, "bot/github"); ok {
		t.Error("still remembered after Forget")
	}
}

// TestApprovalOneDecisionWins: deciders racing on three replicas (an
// approve and denies) → exactly one decision is recorded, and every
// waiter sees that one.
func TestApprovalOneDecisionWins(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 3, Options{})
	ctx := context.Background()
	for round := range 5 {
		id, _, err := s[0].Pend(ctx, fmt.Sprintf("bot/race-%d", round), nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s[i%3].Decide(ctx, id, Decision{Approved: i%2 == 0, By: fmt.Sprint(i)}) == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d decisions won, want 1", round, n)
		}
		d0, err0 := s[1].Wait(ctx, id)
		d1, err1 := s[2].Wait(ctx, id)
		if err0 != nil || err1 != nil || d0 != d1 {
			t.Fatalf("waiters saw %+v / %+v (%v %v)", d0, d1, err0, err1)
		}
	}
}
