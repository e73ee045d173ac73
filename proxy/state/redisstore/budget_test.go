package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var month = Window{ID: "2026-12", End: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}

// TestBudgetNoOvershoot: a budget that fits 10 requests, 60 concurrent
// reservations over 3 replicas → exactly 10 granted; the rest see
// ErrExceeded with the totals.
func TestBudgetNoOvershoot(t *testing.T) {
	r := startRedis(t)
	stores := newStores(t, r, 3, Options{})
	ctx := context.Background()
	const each, limit = 4096, 10 * 4096
	var granted atomic.Int64
	var resv sync.Map
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := stores[i%3].Reserve(ctx, "team-monthly", month, each, limit)
			switch {
			case err == nil && res.Granted:
				granted.Add(1)
				resv.Store(i, res)
			case errors.Is(err, ErrExceeded):
				if res.Used+res.Reserved+each <= limit {
					t.Errorf("refused with used %d + reserved %d + %d <= %d", res.Used, res.Reserved, each, limit)
				}
			default:
				t.Errorf("reserve: %+v %v", res, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if g := granted.Load(); g != 10 {
		t.Fatalf("granted %d of 60, want exactly 10", g)
	}
	// Reconcile: 5 commit 1000 each, 5 release; the budget then has
	// 5000 used and room for (40960-5000)/4096 = 8 more.
	n := 0
	resv.Range(func(_, v any) bool {
		res := v.(Reservation)
		var held bool
		var err error
		if n%2 == 0 {
			held, err = stores[n%3].Commit(ctx, res, 1000)
		} else {
			held, err = stores[n%3].Release(ctx, res)
		}
		if err != nil || !held {
			t.Errorf("end reservation: held=%v err=%v", held, err)
		}
		n++
		return true
	})
	used, reserved, err := stores[1].Used(ctx, "team-monthly", month)
	if err != nil || used != 5000 || reserved != 0 {
		t.Fatalf("used %d reserved %d err %v, want 5000 0", used, reserved, err)
	}
	more := 0
	for {
		if _, err := stores[2].Reserve(ctx, "team-monthly", month, each, limit); err != nil {
			break
		}
		more++
	}
	if more != 8 {
		t.Errorf("after reconcile %d more fit, want 8", more)
	}
	// Another window of the same budget is empty.
	if _, err := stores[0].Reserve(ctx, "team-monthly", Window{ID: "2027-01", End: month.End.AddDate(0, 1, 0)}, each, limit); err != nil {
		t.Errorf("next month: %v", err)
	}
}

// TestBudgetReservationExpires: a replica that dies holding reservations
// does not leak them: they lapse after ReservationTTL.
func TestBudgetReservationExpires(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 2, Options{ReservationTTL: 300 * time.Millisecond})
	ctx := context.Background()
	var kept Reservation
	for i := range 3 {
		res, err := s[0].Reserve(ctx, "b", month, 10, 30)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			kept = res
		}
	}
	// s[1] keeps one of them alive (a long stream) while s[0] dies.
	stopExtend := make(chan struct{})
	extended := make(chan bool, 1)
	go func() {
		held := true
		for {
			select {
			case <-stopExtend:
				extended <- held
				return
			case <-time.After(100 * time.Millisecond):
				h, err := s[1].Extend(ctx, kept)
				held = held && h && err == nil
			}
		}
	}()
	if _, err := s[1].Reserve(ctx, "b", month, 10, 30); !errors.Is(err, ErrExceeded) {
		t.Fatalf("full budget: %v, want ErrExceeded", err)
	}
	s[0].Close() // the "replica" dies without Commit/Release
	waitFor(t, 2*time.Second, "the two unextended reservations lapse", func() error {
		_, err := s[1].Reserve(ctx, "b", month, 20, 30)
		return err
	})
	if _, err := s[1].Reserve(ctx, "b", month, 1, 30); !errors.Is(err, ErrExceeded) {
		t.Errorf("the extended reservation lapsed too: %v", err)
	}
	close(stopExtend)
	if !<-extended {
		t.Error("Extend reported the live reservation gone")
	}
	time.Sleep(400 * time.Millisecond)
	if held, err := s[1].Extend(ctx, kept); held || err != nil {
		t.Errorf("Extend of a lapsed reservation: %v %v", held, err)
	}
}

// TestBudgetRolling: a rolling window counts commits across calls and
// replicas; Commit of an already-ended reservation adds usage once.
func TestBudgetRolling(t *testing.T) {
	r := startRedis(t)
	s := newStores(t, r, 2, Options{})
	ctx := context.Background()
	w := Window{Rolling: 24 * time.Hour}
	res, err := s[0].Reserve(ctx, "roll", w, 60, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s[1].Commit(ctx, res, 70); err != nil {
		t.Fatal(err)
	}
	if held, _ := s[1].Release(ctx, res); held {
		t.Error("release after commit said held")
	}
	if _, err := s[1].Reserve(ctx, "roll", w, 31, 100); !errors.Is(err, ErrExceeded) {
		t.Errorf("70 used + 31 > 100: %v, want ErrExceeded", err)
	}
	if _, err := s[0].Reserve(ctx, "roll", w, 30, 100); err != nil {
		t.Errorf("70 used + 30 <= 100: %v", err)
	}
	if _, err := s[0].Reserve(ctx, "x", Window{}, 1, 1); err == nil {
		t.Error("window without ID or Rolling accepted")
	}
}
