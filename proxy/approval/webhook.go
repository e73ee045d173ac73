package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Webhook defaults.
const (
	DefaultWebhookTimeout  = 5 * time.Second
	DefaultWebhookAttempts = 5
	DefaultWebhookBackoff  = 500 * time.Millisecond
	webhookQueue           = 256
)

// WebhookConfig configures a [Webhook].
type WebhookConfig struct {
	URL string // where to POST (approvals.webhook)
	// AdminURL is the admin listener's base URL ("http://127.0.0.1:7700")
	// the approve/deny and console links are built on.
	AdminURL string
	Client   *http.Client  // optional; its Timeout is replaced per attempt
	Timeout  time.Duration // per attempt; 0 = DefaultWebhookTimeout
	Attempts int           // 0 = DefaultWebhookAttempts
	Backoff  time.Duration // first retry delay, doubled each retry; 0 = DefaultWebhookBackoff
	Metrics  *Metrics      // optional
	Log      *zap.Logger   // optional
}

// WebhookPayload is the JSON body POSTed once per pending entry. Text makes
// it a valid Slack incoming-webhook message.
type WebhookPayload struct {
	Text       string  `json:"text"`
	Pending    Pending `json:"pending"`
	ApproveURL string  `json:"approve_url"` // POST with the admin token
	DenyURL    string  `json:"deny_url"`    // POST with the admin token
	ConsoleURL string  `json:"console_url"` // opens the console (after airlock console)
}

// Webhook is a [Notifier] that POSTs each new pending entry to a URL from
// one background goroutine: Notify never blocks (a full queue drops the
// notification, logged and counted), each delivery is retried with
// exponential backoff on network errors and non-2xx answers.
type Webhook struct {
	cfg   WebhookConfig
	log   *zap.Logger
	queue chan Pending
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// NewWebhook starts the notifier; Close stops it.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("approvals.webhook %q: want an http(s) URL", redactURL(cfg.URL))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultWebhookAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultWebhookBackoff
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	w := &Webhook{cfg: cfg, log: cfg.Log, queue: make(chan Pending, webhookQueue), stop: make(chan struct{})}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// Notify implements [Notifier]; it never blocks.
func (w *Webhook) Notify(p Pending) {
	select {
	case w.queue <- p:
	default:
		w.count("dropped")
		w.log.Error("approval webhook dropped: queue full", zap.String(fieldID, p.ID))
	}
}

// Close stops the delivery goroutine; undelivered notifications are dropped.
func (w *Webhook) Close() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *Webhook) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case p := <-w.queue:
			w.deliver(p)
		}
	}
}

// deliver POSTs one entry, retrying with backoff.
func (w *Webhook) deliver(p Pending) {
	body, err := json.Marshal(w.payload(p))
	if err != nil {
		w.count("failed")
		w.log.Error("approval webhook encode failed", zap.String(fieldID, p.ID), zap.Error(err))
		return
	}
	delay := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := w.post(body)
		if err == nil {
			w.count("delivered")
			return
		}
		if attempt >= w.cfg.Attempts {
			w.count("failed")
			w.log.Error("approval webhook failed", zap.String(fieldID, p.ID), zap.Int("attempts", attempt), zap.Error(err))
			return
		}
		w.count("retried")
		w.log.Warn("approval webhook retry", zap.String(fieldID, p.ID), zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-w.stop:
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// post makes one attempt.
func (w *Webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock-approvals")
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %w", redactURL(w.cfg.URL), stripURLError(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post to %s: status %d", redactURL(w.cfg.URL), resp.StatusCode)
	}
	return nil
}

// payload builds the JSON body for p.
func (w *Webhook) payload(p Pending) WebhookPayload {
	base := strings.TrimRight(w.cfg.AdminURL, "/")
	what := p.Rule
	if p.Unmatched {
		what = "no rule matched"
	} else {
		what = "rule " + what
	}
	return WebhookPayload{
		Text: fmt.Sprintf("airlock: agent %s wants %s %s%s (%s). Approve: `airlock approvals approve %s` or deny: `airlock approvals deny %s`",
			p.Agent, p.Method, p.Host, p.Path, what, p.ID, p.ID),
		Pending:    p,
		ApproveURL: base + "/v1/approvals/" + p.ID + "/approve",
		DenyURL:    base + "/v1/approvals/" + p.ID + "/deny",
		ConsoleURL: base + "/ui/",
	}
}

func (w *Webhook) count(result string) {
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.Webhook.WithLabelValues(result).Inc()
	}
}

// redactURL drops userinfo, path and query from a webhook URL for logs:
// Slack-style webhook URLs carry their secret in the path.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[webhook]"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// stripURLError keeps a *url.Error's cause, whose text holds the full URL.
func stripURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
