package approval

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recordingNotifier struct {
	mu  sync.Mutex
	ids []string
}

func (n *recordingNotifier) Notify(p Pending) {
	n.mu.Lock()
	n.ids = append(n.ids, p.ID)
	n.mu.Unlock()
}

func (n *recordingNotifier) count() int { n.mu.Lock(); defer n.mu.Unlock(); return len(n.ids) }

// TestReconfigure: a policy reload's timeout, remember and notifier apply
// to entries opened after it; a bad remember changes nothing.
func TestReconfigure(t *testing.T) {
	q, _, _ := newQueue(t, "", func(c *Config) { c.Timeout = time.Minute })
	n := &recordingNotifier{}
	if old, err := q.Reconfigure(100*time.Millisecond, "1h", n); err != nil || old != nil {
		t.Fatalf("Reconfigure = %v, %v", old, err)
	}
	start := time.Now()
	if _, err := q.Wait(context.Background(), botReq); !errors.Is(err, ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("Wait after reconfigure = %v after %v", err, time.Since(start))
	}
	if n.count() != 1 {
		t.Fatalf("new notifier heard %d entries", n.count())
	}
	if _, err := q.Reconfigure(time.Second, "forever", nil); !errors.Is(err, ErrBadRemember) {
		t.Fatalf("bad remember: %v", err)
	}
	if s := q.settings(); s.timeout != 100*time.Millisecond || s.remember != "1h" || s.notifier != Notifier(n) {
		t.Fatalf("a refused reconfigure changed the settings: %+v", s)
	}
	// The new default remember applies to an approval naming none.
	done := make(chan Decision, 1)
	q.Reconfigure(time.Minute, "1h", nil)
	go func() { d, _ := q.Wait(context.Background(), botReq); done <- d }()
	p := waitPending(t, q, 1, 1)[0]
	if _, err := q.Decide(context.Background(), p.ID, Verdict{Approve: true, Approver: "t"}); err != nil {
		t.Fatal(err)
	}
	if d := <-done; d.Remember != "1h" {
		t.Fatalf("remember = %q, want the reconfigured default 1h", d.Remember)
	}
}
