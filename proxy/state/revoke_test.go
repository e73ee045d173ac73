package state

import (
	"context"
	"testing"
	"time"
)

func TestRevocationsReachEverySubscriber(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := m.SubscribeRevocations(ctx)
	b, _ := m.SubscribeRevocations(ctx)
	ev := Revocation{Agent: "bot", Reason: "removed", Origin: "r1", At: time.Now()}
	if err := m.PublishRevocation(ctx, ev); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan Revocation{"a": a, "b": b} {
		select {
		case got := <-ch:
			if got.Agent != "bot" || got.Reason != "removed" || got.Origin != "r1" {
				t.Errorf("%s got %+v", name, got)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s got nothing", name)
		}
	}
	cancel()
	for _, ch := range []<-chan Revocation{a, b} {
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("event after cancel")
			}
		case <-time.After(time.Second):
			t.Fatal("channel not closed after cancel")
		}
	}
	if err := m.PublishRevocation(context.Background(), ev); err != nil { // no subscriber left
		t.Fatal(err)
	}
}

func TestRevocationsSlowSubscriberKeepsNewest(t *testing.T) {
	m := NewMemory()
	ch, _ := m.SubscribeRevocations(t.Context())
	for i := range revocationBuffer + 10 {
		_ = m.PublishRevocation(t.Context(), Revocation{Agent: string(rune('a' + i%26)), Reason: "removed", At: time.Unix(int64(i), 0)})
	}
	var last Revocation
	for range revocationBuffer {
		last = <-ch
	}
	if last.At.Unix() != revocationBuffer+9 {
		t.Fatalf("newest event lost: last delivered %v", last.At.Unix())
	}
}

var _ Revocations = (*Memory)(nil)
