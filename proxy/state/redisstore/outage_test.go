package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRedisOutage kills redis-server under running stores: every concern
// follows its failure mode, errors are counted and shown by Health; then
// redis-server comes back on the same port and the same stores recover,
// pub/sub included, without being recreated.
func TestRedisOutage(t *testing.T) {
	r := startRedis(t)
	reg := prometheus.NewRegistry()
	def := newStores(t, r, 1, Options{Registerer: reg})[0]                                 // defaults
	inv := newStores(t, r, 1, Options{RateLimitMode: FailClosed, BudgetMode: FailOpen})[0] // inverted modes
	ctx := context.Background()
	evs := def.Revocations(ctx)
	waitSubscribed(t, r, 2)
	if ok, _, err := def.Allow(ctx, "bot/r", 10, 10); !ok || err != nil {
		t.Fatalf("before the outage: %v %v", ok, err)
	}

	// Requests keep coming through the outage: none may hang.
	h := startHammer(def)
	time.Sleep(200 * time.Millisecond)
	r.kill()
	cases := map[string]func() error{
		"ratelimit fail_open admits": func() error {
			ok, _, err := def.Allow(ctx, "bot/r", 10, 10)
			return want(ok, err, true)
		},
		"ratelimit fail_closed refuses": func() error {
			ok, _, err := inv.Allow(ctx, "bot/r", 10, 10)
			return want(ok, err, false)
		},
		"budget fail_closed refuses": func() error {
			res, err := def.Reserve(ctx, "b", month, 1, 10)
			return want(res.Granted, err, false)
		},
		"budget fail_open admits locally": func() error {
			res, err := inv.Reserve(ctx, "b", month, 1, 10)
			if !res.Local {
				return errors.New("not marked Local")
			}
			if held, cerr := inv.Commit(ctx, res, 1); held || cerr != nil {
				return errors.New("commit of a local reservation touched redis")
			}
			return want(res.Granted, err, true)
		},
		"approvals fail closed": func() error {
			_, _, err := def.Pend(ctx, "bot/rule", nil, time.Minute)
			return want(false, err, false)
		},
		"remembered reads as not remembered": func() error {
			_, ok, err := def.Remembered(ctx, "bot/rule")
			return want(ok, err, false)
		},
		"oauth2 unavailable": func() error {
			_, err := def.Token(ctx, "c", time.Minute, func(context.Context, Token) (Token, error) {
				return Token{}, errors.New("refresh must not run without the lease")
			})
			return want(false, err, false)
		},
		"revocation publish fails": func() error {
			return want(false, def.PublishRevocation(ctx, Revocation{Kind: AgentRotated, Agent: "x"}), false)
		},
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			if err := fn(); err != nil {
				t.Error(err)
			}
		})
	}
	health := def.Health(ctx)
	if h := health; h.OK || h.LastError == "" || h.Errors["ratelimit"] == 0 || h.Errors["budget_reserve"] == 0 || h.Modes["budgets"] != "fail_closed" {
		t.Errorf("health during outage: %+v", health)
	}
	for _, op := range []string{"ratelimit", "budget_reserve", "approval_pend", "oauth2_read", "revocation_publish"} {
		if v := testutil.ToFloat64(def.errs.WithLabelValues(op)); v < 1 {
			t.Errorf("airlock_state_errors_total{op=%q} = %v", op, v)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "airlock_state_errors_total"); err != nil || n == 0 {
		t.Errorf("metric not registered: %d %v", n, err)
	}

	r.start() // same port, empty data (no persistence in the test)
	waitFor(t, 10*time.Second, "rate limits back", func() error {
		_, _, err := def.Allow(ctx, "bot/r", 10, 10)
		return err
	})
	if _, err := def.Reserve(ctx, "b", month, 1, 10); err != nil {
		t.Errorf("budget after restart: %v", err)
	}
	if _, _, err := inv.Pend(ctx, "bot/rule", nil, time.Minute); err != nil {
		t.Errorf("approvals after restart: %v", err)
	}
	if !def.Health(ctx).OK {
		t.Error("health not OK after restart")
	}
	okBefore := h.ok.Load()
	waitFor(t, 5*time.Second, "hammer admitted again", func() error {
		if h.ok.Load() <= okBefore+10 {
			return errNotYet
		}
		return nil
	})
	h.stop()
	if h.unavailable.Load() == 0 || time.Duration(h.slowest.Load()) > 3*time.Second {
		t.Errorf("hammer through the outage: %d unavailable, slowest call %v (want > 0 and < 3s)",
			h.unavailable.Load(), time.Duration(h.slowest.Load()))
	}
	t.Logf("hammer: %d admitted, %d fail-open during the outage, slowest call %v",
		h.ok.Load(), h.unavailable.Load(), time.Duration(h.slowest.Load()))
	waitSubscribed(t, r, 2) // go-redis resubscribed on its own
	if err := inv.PublishRevocation(ctx, Revocation{Kind: SessionRevoked, Agent: "bot", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-evs:
		if ev.Session != "s1" {
			t.Errorf("event after restart: %+v", ev)
		}
	case <-time.After(2 * time.Second):
		t.Error("revocation subscriber did not recover")
	}
}

// want checks a fallback: err wraps ErrUnavailable and the verdict is ok.
func want(got bool, err error, ok bool) error {
	if !errors.Is(err, ErrUnavailable) {
		return errors.New("error does not wrap ErrUnavailable: " + errText(err))
	}
	if got != ok {
		return errors.New("wrong verdict for the failure mode")
	}
	if strings.Contains(err.Error(), "0123456789abcdef") {
		return errors.New("error shows the token key")
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// hammer calls Allow from 10 goroutines until stopped, recording outcomes
// and the slowest call.
type hammer struct {
	ok, unavailable, slowest atomic.Int64
	done                     chan struct{}
	wg                       sync.WaitGroup
}

func startHammer(s *Store) *hammer {
	h := &hammer{done: make(chan struct{})}
	for range 10 {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for {
				select {
				case <-h.done:
					return
				default:
				}
				start := time.Now()
				_, _, err := s.Allow(context.Background(), "bot/hammer", 1e6, 1e6)
				if d := int64(time.Since(start)); d > h.slowest.Load() {
					h.slowest.Store(d)
				}
				if err != nil {
					h.unavailable.Add(1)
					time.Sleep(time.Millisecond)
				} else {
					h.ok.Add(1)
				}
			}
		}()
	}
	return h
}

func (h *hammer) stop() { close(h.done); h.wg.Wait() }
