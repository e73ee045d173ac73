package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/console"
	"github.com/airlock/airlock/proxy/usage"
)

// ApprovalOptions are what the approval queue and the console need besides
// the server and its policy.
type ApprovalOptions struct {
	Home       string // approvals.json (remembered approvals) lives here
	PolicyPath string // policy.proposed.yaml is written beside it
	AdminToken string // the console's and the admin API's token; "" = no console
	AdminURL   string // the admin listener's base URL for webhook links; "" = none
	Log        *zap.Logger
	// UsageFile is the usage meter's state file (Options.UsageFile); the
	// console's budget bars read it. "": no budget bars.
	UsageFile string
	// PolicyPoll is how often a policy reload is looked for (timeout,
	// webhook, remember); 0 = 250ms.
	PolicyPoll time.Duration
	// Store, when set, holds the queue instead of approvals.json (fleet
	// mode: Stack.ApprovalStore).
	Store approval.Store
}

// Approvals is the running approval queue, its webhook and the console.
type Approvals struct {
	Queue   *approval.Queue
	Console *console.Console // nil without an admin token
	Feed    *console.Feed

	srv      *proxy.Server
	log      *zap.Logger
	adminURL string
	metrics  *approval.Metrics
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex // guards webhook and its URL
	webhook *approval.Webhook
	hookURL string
}

// StartApprovals builds the approval queue for srv (installed with
// Server.SetApprovals), feeds the console from the audit path and follows
// policy reloads. Close it after the server has shut down.
func StartApprovals(srv *proxy.Server, o ApprovalOptions) (*Approvals, error) {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	store := o.Store
	if store == nil {
		local, err := approval.NewLocalStore(filepath.Join(o.Home, "approvals.json"))
		if err != nil {
			return nil, fmt.Errorf("approval store: %w", err)
		}
		store = local
	}
	a := &Approvals{srv: srv, log: log.Named("approval"), adminURL: o.AdminURL, Feed: console.NewFeed(0),
		metrics: approval.NewMetrics(srv.Metrics().Registry), done: make(chan struct{})}
	pol := srv.Policy()
	hook, err := a.newWebhook(pol.Approvals.Webhook)
	if err != nil {
		return nil, err
	}
	a.webhook, a.hookURL = hook, pol.Approvals.Webhook
	q, err := approval.New(approval.Config{Store: store, Timeout: pol.Approvals.Timeout, Remember: pol.Approvals.Remember,
		ProposedPath: filepath.Join(filepath.Dir(o.PolicyPath), approval.ProposedFile),
		Notifier:     notifier(hook), OnOutcome: srv.ApprovalOutcome, Metrics: a.metrics, Log: a.log})
	if err != nil {
		if hook != nil {
			hook.Close()
		}
		return nil, err
	}
	a.Queue = q
	if o.AdminToken != "" {
		c, err := console.New(console.Config{Queue: q, Feed: a.Feed, Budgets: budgetSource(o.UsageFile),
			AdminToken: o.AdminToken, Log: log.Named("console")})
		if err != nil {
			q.Close()
			return nil, err
		}
		a.Console = c
	}
	srv.SetAuditTap(a.feed)
	srv.SetApprovals(q)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	poll := o.PolicyPoll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	go a.follow(ctx, pol, poll)
	return a, nil
}

// notifier avoids a typed-nil Notifier.
func notifier(w *approval.Webhook) approval.Notifier {
	if w == nil {
		return nil
	}
	return w
}

func (a *Approvals) newWebhook(url string) (*approval.Webhook, error) {
	if url == "" {
		return nil, nil
	}
	w, err := approval.NewWebhook(approval.WebhookConfig{URL: url, AdminURL: a.adminURL, Metrics: a.metrics, Log: a.log})
	if err != nil {
		return nil, fmt.Errorf("approvals.webhook: %w", err)
	}
	return w, nil
}

// budgetSource is the console's budget bars read from the meter's state
// file (nil without one). The meter saves it every second, so a bar lags
// the meter by at most that.
func budgetSource(path string) console.BudgetSource {
	if path == "" {
		return nil
	}
	return usageFile(path)
}

// usageFile reads budgets from a usage state file.
type usageFile string

// Budgets implements console.BudgetSource.
func (f usageFile) Budgets(context.Context) ([]console.Budget, error) {
	st, err := usage.LoadState(string(f))
	if err != nil {
		return nil, err
	}
	bs, err := st.BudgetStatus(time.Now())
	if err != nil {
		return nil, err
	}
	out := make([]console.Budget, 0, len(bs))
	for _, b := range bs {
		out = append(out, console.Budget{Name: b.Name, Unit: b.Unit, Used: b.Used, Limit: b.Limit, WarnAt: b.WarnAt, Resets: b.Reset})
	}
	return out, nil
}

// feed turns an audit line into a console feed event.
func (a *Approvals) feed(l audit.Line) {
	t := l.At // set by the proxy's audit path; Time only with an audit file
	a.Feed.Add(console.Event{Time: t, Agent: l.Agent, Method: l.Method, Host: l.Host, Path: l.Path, Rule: l.Rule,
		Credential: l.Credential, Decision: l.Decision, Code: strings.TrimPrefix(l.Code, "OK"), Status: l.Status,
		DurationMS: l.DurationMS})
}

// follow applies each new policy's approvals section (a reload swaps the
// policy pointer; the reloader is not this package's).
func (a *Approvals) follow(ctx context.Context, cur *policy.Policy, every time.Duration) {
	defer close(a.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p := a.srv.Policy(); p != nil && p != cur {
			cur = p
			a.Apply(p)
		}
	}
}

// Apply reconfigures the queue from pol's approvals section: timeout,
// default remember, webhook URL. A bad section keeps the old settings.
func (a *Approvals) Apply(pol *policy.Policy) {
	a.mu.Lock()
	defer a.mu.Unlock()
	hook := a.webhook
	if pol.Approvals.Webhook != a.hookURL {
		nw, err := a.newWebhook(pol.Approvals.Webhook)
		if err != nil {
			a.log.Error("approvals reload refused", zap.Error(err))
			return
		}
		hook = nw
	}
	old, err := a.Queue.Reconfigure(pol.Approvals.Timeout, pol.Approvals.Remember, notifier(hook))
	if err != nil {
		a.log.Error("approvals reload refused", zap.Error(err))
		if hook != a.webhook && hook != nil {
			hook.Close()
		}
		return
	}
	if w, ok := old.(*approval.Webhook); ok && w != nil && w != hook {
		w.Close()
	}
	a.webhook, a.hookURL = hook, pol.Approvals.Webhook
	a.log.Info("approvals reconfigured", zap.Duration("timeout", pol.Approvals.Timeout))
}

// Close stops following reloads, the queue and the webhook.
func (a *Approvals) Close() {
	a.cancel()
	<-a.done
	a.srv.SetAuditTap(nil)
	a.Queue.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.webhook != nil {
		a.webhook.Close()
	}
}
