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
	waitSubscribed(t, r, 3)
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

// waitSubscribed waits until n pub/sub connections listen on the
// revocation channel.
func waitSubscribed(t *testing.T, r *redisServer, n int64) {
	t.Helper()
	c := r.client()
	waitFor(t, 5*time.Second, "subscribers connected", func() error {
		m, err := c.PubSubNumSub(context.Background(), "airlock:chan:revocations").Result()
		if err != nil {
			return err
		}
		if m["airlock:chan:revocations"] < n {
			return errNotYet
		}
		return nil
	})
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}
