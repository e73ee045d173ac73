package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/approval"
)

// TestApprovalStoreAcrossReplicas: an entry joined on replica A (twice:
// one entry, two waiters) is listed and decided on replica B; A's
// subscriber hears the decision at once, Decided has it, a second
// decision loses (ErrNotFound), and a durable approval is remembered
// fleet-wide until its end.
func TestApprovalStoreAcrossReplicas(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 2, Options{})
	a, b := stores[0].Approvals(), stores[1].Approvals()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := a.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	p := approval.Pending{ID: "ap-1", Key: "bot\x00github", Request: approval.Request{Agent: "bot", Rule: "github"}, Created: now}
	got, created, err := a.Join(ctx, p)
	if err != nil || !created || got.ID != "ap-1" || got.Waiters != 1 {
		t.Fatalf("first Join: %+v %v %v", got, created, err)
	}
	p2 := p
	p2.ID = "ap-2"
	if got, created, err := a.Join(ctx, p2); err != nil || created || got.ID != "ap-1" || got.Waiters != 2 {
		t.Fatalf("second Join: %+v %v %v (want the same entry, 2 waiters)", got, created, err)
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "ap-1" || list[0].Agent != "bot" || list[0].Key != p.Key {
		t.Fatalf("List on B: %+v %v", list, err)
	}
	if gone, err := a.Leave(ctx, "ap-1"); gone || err != nil {
		t.Fatalf("Leave one of two: %v %v", gone, err)
	}
	d := approval.Decision{ID: "ap-1", Approved: true, Remember: "1h", Until: now.Add(time.Hour), Approver: "cli:alice", At: now}
	time.Sleep(50 * time.Millisecond) // the subscription is live
	start := time.Now()
	if err := b.Resolve(ctx, d); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub:
		if ev.ID != "ap-1" || !ev.Approved || ev.Approver != "cli:alice" || ev.Key != p.Key {
			t.Fatalf("heard %+v", ev)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("decision heard after %v", took)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("A did not hear B's decision")
	}
	if got, ok, err := a.Decided(ctx, "ap-1"); !ok || err != nil || !got.Approved {
		t.Fatalf("Decided: %+v %v %v", got, ok, err)
	}
	if err := a.Resolve(ctx, approval.Decision{ID: "ap-1", At: now}); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("second decision: %v, want ErrNotFound", err)
	}
	if _, err := a.Get(ctx, "ap-1"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Get after the decision: %v", err)
	}
	if _, ok, _ := a.Remembered(ctx, p.Key, now.Add(30*time.Minute)); !ok {
		t.Fatal("the 1h approval is not remembered on A")
	}
	if _, ok, _ := a.Remembered(ctx, p.Key, now.Add(2*time.Hour)); ok {
		t.Fatal("remembered past its end")
	}
	if _, err := a.Leave(ctx, "ap-1"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("Leave after the decision: %v", err)
	}
	r.kill()
	if _, _, err := a.Join(ctx, p2); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("redis down: %v, want ErrUnavailable (fail closed)", err)
	}
}
