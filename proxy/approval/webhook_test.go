package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// receiver is a loopback webhook endpoint that fails the first failN POSTs
// of each entry with 500.
type receiver struct {
	mu       sync.Mutex
	attempts map[string]int // by pending id
	ok       map[string]int
	bodies   []WebhookPayload
	failN    int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p WebhookPayload
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
		http.Error(w, "bad", 400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts[p.Pending.ID]++
	if rc.attempts[p.Pending.ID] <= rc.failN {
		http.Error(w, "flaky", 500)
		return
	}
	rc.ok[p.Pending.ID]++
	rc.bodies = append(rc.bodies, p)
}

func TestWebhookOncePerEntryWithRetries(t *testing.T) {
	rc := &receiver{attempts: map[string]int{}, ok: map[string]int{}, failN: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	m := NewMetrics(prometheus.NewRegistry())
	core, logs := observer.New(zap.DebugLevel)
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hook/T0SECRET", AdminURL: "http://127.0.0.1:7700",
		Backoff: 10 * time.Millisecond, Metrics: m, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	q, _, _ := newQueue(t, "", func(c *Config) { c.Notifier = wh })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 20 waiters on one key plus one other key: two entries.
	for i := 0; i < 20; i++ {
		go q.Wait(ctx, botReq)
	}
	other := Request{Agent: "bot", Method: "GET", Host: "example.com", Path: "/x?token=QSECRET", Unmatched: true}
	go q.Wait(ctx, other)
	ps := waitPending(t, q, 2, 21)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rc.mu.Lock()
		n := len(rc.bodies)
		rc.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d deliveries, want 2", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, p := range ps {
		if rc.ok[p.ID] != 1 || rc.attempts[p.ID] != 3 {
			t.Fatalf("entry %s: %d delivered of %d attempts, want 1 of 3", p.ID, rc.ok[p.ID], rc.attempts[p.ID])
		}
	}
	for _, b := range rc.bodies {
		if strings.Contains(b.Pending.Path, "QSECRET") || strings.Contains(b.Text, "QSECRET") {
			t.Fatalf("webhook payload holds the query string: %+v", b)
		}
		if !strings.Contains(b.Text, b.Pending.ID) || b.ApproveURL != "http://127.0.0.1:7700/v1/approvals/"+b.Pending.ID+"/approve" ||
			b.DenyURL == "" || b.Pending.Agent != "bot" {
			t.Fatalf("payload %+v", b)
		}
	}
	// Slack-style webhook URLs carry their secret in the path: never logged.
	if logs.Len() == 0 {
		t.Fatal("retries not logged")
	}
	for _, e := range logs.All() {
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.String
			if f.Interface != nil {
				line += " " + fmt.Sprint(f.Interface)
			}
		}
		if strings.Contains(line, "T0SECRET") {
			t.Fatalf("log line holds the webhook URL's secret: %s", line)
		}
	}
	if got := testutil.ToFloat64(m.Webhook.WithLabelValues("retried")); got != 4 {
		t.Fatalf("retried = %v, want 4", got)
	}
}

func TestWebhookFailureNeverBlocks(t *testing.T) {
	// A receiver that hangs: deliveries time out, Wait and Notify don't.
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang)
	m := NewMetrics(prometheus.NewRegistry())
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Timeout: 50 * time.Millisecond, Attempts: 2, Backoff: time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	start := time.Now()
	for i := 0; i < webhookQueue*2; i++ {
		wh.Notify(Pending{ID: "ap-x"})
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Notify blocked %v", el)
	}
	if testutil.ToFloat64(m.Webhook.WithLabelValues("dropped")) == 0 {
		t.Fatal("overflow not counted as dropped")
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.Webhook.WithLabelValues("failed")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("failure not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "hooks.example/x", "http://"} {
		if _, err := NewWebhook(WebhookConfig{URL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
