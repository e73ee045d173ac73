package redisstore

import (
	"context"
	"testing"
	"time"
)

// TestRevocationReachesAll: one replica's event reaches every replica's
// subscriber (its own too) within 1 s.
func TestRevocationReachesAll(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 3, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]<-chan Revocation, len(s))
	for i := range s {
		subs[i] = s[i].Revocations(ctx)
	}
	at := time.Now()
	if err := s[1].PublishRevocation(ctx, Revocation{Kind: AgentRemoved, Agent: "research-bot"}); err != nil {
		t.Fatal(err)
	}
	for i, ch := range subs {
		select {
		case ev := <-ch:
			if ev.Kind != AgentRemoved || ev.Agent != "research-bot" || ev.Replica != "replica-1" {
				t.Errorf("replica %d got %+v", i, ev)
			}
			if lat := time.Since(at); lat > time.Second {
				t.Errorf("replica %d got it after %v", i, lat)
			}
		case <-time.After(time.Second):
			t.Fatalf("replica %d: no event within 1s", i)
		}
	}
	cancel()
	for _, ch := range subs {
		for range ch { // closed once ctx ends
		}
	}
}

// TestRevocationReplayAfterDisconnect: a reader whose connection is cut
// gets the events published meanwhile, in order, once it reconnects
// (plain pub/sub would lose them).
func TestRevocationReplayAfterDisconnect(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 2, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := s[0].Revocations(ctx)
	c := r.client()
	c.Ping(ctx)
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for _, agent := range []string{"a", "b", "c"} {
		if err := s[1].PublishRevocation(ctx, Revocation{Kind: AgentRotated, Agent: agent}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a", "b", "c"} {
		select {
		case ev := <-evs:
			if ev.Agent != want {
				t.Fatalf("got agent %q, want %q (order kept)", ev.Agent, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("event for %q lost after the disconnect", want)
		}
	}
	// Only events after the Revocations call: a new reader does not
	// replay history.
	late := s[1].Revocations(ctx)
	_ = s[0].PublishRevocation(ctx, Revocation{Kind: AgentRemoved, Agent: "d"})
	if ev := <-late; ev.Agent != "d" {
		t.Errorf("new reader got %q first, want d", ev.Agent)
	}
}

// waitSubscribed waits until n pub/sub connections listen on the
// approvals channel.
func waitSubscribed(t *testing.T, r *redisServer, n int64) {
	t.Helper()
	c := r.client()
	waitFor(t, 5*time.Second, "subscribers connected", func() error {
		m, err := c.PubSubNumSub(context.Background(), "airlock:chan:approvals").Result()
		if err != nil {
			return err
		}
		if m["airlock:chan:approvals"] < n {
			return errNotYet
		}
		return nil
	})
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}

// TestRevocationsEndOnClose: closing the Store ends its readers.
func TestRevocationsEndOnClose(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 1, Options{})[0]
	evs := s.Revocations(context.Background())
	s.Close()
	select {
	case _, open := <-evs:
		if open {
			t.Error("event after close")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("reader still running 3s after Close")
	}
}
