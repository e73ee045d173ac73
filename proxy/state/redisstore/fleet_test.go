package redisstore

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestFleetMembership: replicas see each other while they beat; one that
// stops beating drops out after its TTL, one that leaves at once.
func TestFleetMembership(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 3, Options{})
	ctx := context.Background()
	hctx, stopHeartbeat := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s[0].Heartbeat(hctx, Replica{Addr: "10.0.0.1:7600", Version: "dev"}, 100*time.Millisecond)
		close(done)
	}()
	if err := s[1].Beat(ctx, Replica{Addr: "10.0.0.2:7600"}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s[2].Beat(ctx, Replica{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	ids := func() []string {
		list, err := s[2].Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range list {
			out = append(out, x.ID)
		}
		return out
	}
	waitFor(t, 2*time.Second, "three replicas listed", func() error {
		if len(ids()) != 3 {
			return errNotYet
		}
		return nil
	})
	list, _ := s[1].Replicas(ctx)
	if list[0].ID != "replica-0" || list[0].Addr != "10.0.0.1:7600" || list[0].Version != "dev" {
		t.Errorf("replica-0 listed as %+v", list[0])
	}
	// replica-1 stops beating: gone after its 300ms TTL; replica-0 keeps beating.
	waitFor(t, 2*time.Second, "replica-1 expires", func() error {
		if got := ids(); len(got) != 2 || got[0] != "replica-0" || got[1] != "replica-2" {
			return errNotYet
		}
		return nil
	})
	stopHeartbeat() // Heartbeat leaves on the way out
	<-done
	if got := ids(); len(got) != 1 || got[0] != "replica-2" {
		t.Errorf("after replica-0 left: %v", got)
	}
}

func TestTokenKeyFrom(t *testing.T) {
	dk := bytes.Repeat([]byte{1}, 32)
	k1, err := TokenKeyFrom(dk)
	if err != nil || len(k1) != 32 || bytes.Equal(k1, dk) {
		t.Fatalf("derived %x %v", k1, err)
	}
	k2, _ := TokenKeyFrom(bytes.Repeat([]byte{2}, 32))
	if bytes.Equal(k1, k2) {
		t.Error("different data keys derive the same token key")
	}
	if _, err := TokenKeyFrom([]byte("short")); err == nil {
		t.Error("short data key accepted")
	}
}
