package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Log field names.
const (
	fieldID       = "approval_id"
	fieldAgent    = "agent"
	fieldRule     = "rule"
	fieldHost     = "host"
	fieldMethod   = "method"
	fieldPath     = "path"
	fieldResult   = "result"
	fieldApprover = "approver"
	fieldRemember = "remember"
	fieldReason   = "reason"
)

// pollEvery is the backstop poll of Store.Decided while a waiter is held, in
// case a subscription event was dropped.
const pollEvery = 500 * time.Millisecond

// Outcome is given to the audit hook once per pending entry, when a person
// decides it or it ends without a decision (timeout, cancelled).
type Outcome struct {
	Pending  Pending
	Result   string   // ResultApproved, ResultDenied, ResultTimeout, ResultCancelled
	Decision Decision // for approved and denied: who, why, what it covers
}

// Notifier hears of every new pending entry. Notify must not block.
type Notifier interface {
	Notify(p Pending)
}

// Config configures a [Queue].
type Config struct {
	Store    Store         // required
	Timeout  time.Duration // how long a request is held; 0 = DefaultTimeout
	Remember string        // default remember of an approval; "" = session
	// ProposedPath is where an "always" approval of an unmatched request
	// appends the rule it implies (policy.proposed.yaml beside the policy);
	// "" writes nothing.
	ProposedPath string
	Notifier     Notifier         // optional (the webhook)
	OnOutcome    func(Outcome)    // optional audit hook; must not block long
	Metrics      *Metrics         // optional
	Log          *zap.Logger      // optional
	Now          func() time.Time // optional, for tests
}

// Queue holds requests until a person decides. Its methods are safe for
// concurrent use.
type Queue struct {
	cfg    Config
	log    *zap.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex                 // guards waiters, session and live
	live    live                       // settings a policy reload changes
	waiters map[string][]chan Decision // by entry id, this process's waiters
	session map[string]Decision        // remembered until this process ends, by key
}

// New starts a queue; Close stops it.
func New(cfg Config) (*Queue, error) {
	if cfg.Store == nil {
		return nil, errors.New("approval: Config.Store is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Remember == "" {
		cfg.Remember = RememberSession
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if _, err := ParseRemember(cfg.Remember, cfg.Now()); err != nil {
		return nil, fmt.Errorf("approvals.remember: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, err := cfg.Store.Subscribe(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe to approval decisions: %w", err)
	}
	q := &Queue{cfg: cfg, log: log, cancel: cancel, done: make(chan struct{}),
		waiters: map[string][]chan Decision{}, session: map[string]Decision{},
		live: live{timeout: cfg.Timeout, remember: cfg.Remember, notifier: cfg.Notifier}}
	if cfg.Metrics != nil {
		cfg.Metrics.watch(q)
	}
	go q.dispatch(events)
	return q, nil
}

// Close stops the queue's subscription; held waiters keep polling until
// their own timeout.
func (q *Queue) Close() {
	q.cancel()
	<-q.done
}

// dispatch hands each decision from the store to this process's waiters.
func (q *Queue) dispatch(events <-chan Decision) {
	defer close(q.done)
	for d := range events {
		q.release(d)
	}
}

// release wakes the local waiters of d.ID.
func (q *Queue) release(d Decision) {
	q.mu.Lock()
	ws := q.waiters[d.ID]
	delete(q.waiters, d.ID)
	q.mu.Unlock()
	for _, ch := range ws {
		ch <- d // buffered 1, one send per channel
	}
}

// Wait holds req until a person decides, the timeout passes or ctx ends. It
// returns the approval (Remembered when an earlier one covers req), a
// *DeniedError (ErrDenied), a *TimeoutError (ErrTimeout) or an error
// wrapping ErrCancelled. Call it before any credential is read.
func (q *Queue) Wait(ctx context.Context, req Request) (Decision, error) {
	if i := strings.IndexAny(req.Path, "?#"); i >= 0 { // queries may carry tokens: never stored or shown
		req.Path = req.Path[:i]
	}
	key := req.Key()
	if d, ok, err := q.remembered(ctx, key); err != nil || ok {
		if ok {
			q.count(ResultRemembered)
			d.Remembered = true
		}
		return d, err
	}
	p, created, err := q.cfg.Store.Join(ctx, Pending{ID: newID(), Key: key, Request: req, Created: q.cfg.Now()})
	if err != nil {
		return Decision{}, fmt.Errorf("hold request for approval: %w", err)
	}
	ch := q.listen(p.ID)
	if created {
		q.opened(p)
	}
	return q.hold(ctx, p, ch)
}

// remembered looks up a session or durable approval for key.
func (q *Queue) remembered(ctx context.Context, key string) (Decision, bool, error) {
	now := q.cfg.Now()
	q.mu.Lock()
	d, ok := q.session[key]
	q.mu.Unlock()
	if ok && d.covers(now) {
		return d, true, nil
	}
	d, ok, err := q.cfg.Store.Remembered(ctx, key, now)
	if err != nil {
		return Decision{}, false, fmt.Errorf("look up remembered approvals: %w", err)
	}
	return d, ok, nil
}

// listen registers a local waiter channel for entry id.
func (q *Queue) listen(id string) chan Decision {
	ch := make(chan Decision, 1)
	q.mu.Lock()
	q.waiters[id] = append(q.waiters[id], ch)
	q.mu.Unlock()
	return ch
}

// unlisten drops ch from id's waiters (it left without a decision).
func (q *Queue) unlisten(id string, ch chan Decision) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ws := q.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(q.waiters, id)
	} else {
		q.waiters[id] = ws
	}
}

// opened logs, notifies and counts a new pending entry.
func (q *Queue) opened(p Pending) {
	q.log.Info("approval pending", zap.String(fieldID, p.ID), zap.String(fieldAgent, p.Agent),
		zap.String(fieldRule, p.Rule), zap.String(fieldMethod, p.Method), zap.String(fieldHost, p.Host),
		zap.String(fieldPath, p.Path))
	if n := q.settings().notifier; n != nil {
		n.Notify(p)
	}
}

// hold blocks on one pending entry.
func (q *Queue) hold(ctx context.Context, p Pending, ch chan Decision) (Decision, error) {
	timeout := q.settings().timeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	if d, ok, _ := q.cfg.Store.Decided(ctx, p.ID); ok { // decided before we listened
		q.unlisten(p.ID, ch)
		return answer(d)
	}
	for {
		select {
		case d := <-ch:
			return answer(d)
		case <-poll.C:
			if d, ok, _ := q.cfg.Store.Decided(ctx, p.ID); ok {
				q.unlisten(p.ID, ch)
				return answer(d)
			}
		case <-timer.C:
			return q.leave(p, ch, ResultTimeout, &TimeoutError{ID: p.ID, After: timeout})
		case <-ctx.Done():
			return q.leave(p, ch, ResultCancelled, fmt.Errorf("approval %s: %w: %w", p.ID, ErrCancelled, ctx.Err()))
		}
	}
}

// leave removes one waiter that stops waiting; the last one ends the entry
// with result. A decision that raced the leave wins.
func (q *Queue) leave(p Pending, ch chan Decision, result string, waitErr error) (Decision, error) {
	q.unlisten(p.ID, ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gone, err := q.cfg.Store.Leave(ctx, p.ID)
	if errors.Is(err, ErrNotFound) {
		if d, ok, _ := q.cfg.Store.Decided(ctx, p.ID); ok {
			return answer(d)
		}
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		q.log.Error("approval leave failed", zap.String(fieldID, p.ID), zap.Error(err))
	}
	if gone {
		q.count(result)
		q.log.Warn("approval ended undecided", zap.String(fieldID, p.ID), zap.String(fieldAgent, p.Agent),
			zap.String(fieldRule, p.Rule), zap.String(fieldHost, p.Host), zap.String(fieldResult, result))
		if q.cfg.OnOutcome != nil {
			q.cfg.OnOutcome(Outcome{Pending: p, Result: result})
		}
	}
	return Decision{}, waitErr
}

// answer turns a decision into Wait's result.
func answer(d Decision) (Decision, error) {
	if d.Approved {
		return d, nil
	}
	return d, &DeniedError{ID: d.ID, Approver: d.Approver, Reason: d.Reason}
}

// Pending lists the held entries, oldest first.
func (q *Queue) Pending(ctx context.Context) ([]Pending, error) {
	ps, err := q.cfg.Store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pending approvals: %w", err)
	}
	return ps, nil
}

// Decide records a person's verdict on entry id and releases its waiters on
// every replica. An "always" approval of an unmatched request also appends
// the rule it implies to Config.ProposedPath. ErrNotFound when the entry is
// no longer pending; ErrBadRemember for a bad v.Remember.
func (q *Queue) Decide(ctx context.Context, id string, v Verdict) (Decision, error) {
	p, err := q.cfg.Store.Get(ctx, id)
	if err != nil {
		return Decision{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	d, err := q.decision(p, v)
	if err != nil {
		return Decision{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	if d.Approved && d.Remember == RememberAlways && p.Unmatched && q.cfg.ProposedPath != "" {
		if err := AppendProposed(q.cfg.ProposedPath, p, d); err != nil {
			return Decision{}, fmt.Errorf("decide approval %s: %w (nothing was decided; retry, or approve --for a duration)", id, err)
		}
	}
	if d.Approved && d.Remember == RememberSession {
		q.mu.Lock()
		q.session[p.Key] = d
		q.mu.Unlock()
	}
	if err := q.cfg.Store.Resolve(ctx, d); err != nil {
		if d.Approved && d.Remember == RememberSession {
			q.mu.Lock()
			if q.session[p.Key].ID == d.ID {
				delete(q.session, p.Key)
			}
			q.mu.Unlock()
		}
		return Decision{}, fmt.Errorf("decide approval %s: %w", id, err)
	}
	q.decided(p, d)
	return d, nil
}

// decision builds the Decision for verdict v on entry p.
func (q *Queue) decision(p Pending, v Verdict) (Decision, error) {
	now := q.cfg.Now()
	d := Decision{ID: p.ID, Key: p.Key, Request: p.Request, Approved: v.Approve,
		Approver: v.Approver, Reason: v.Reason, At: now}
	if d.Approver == "" {
		d.Approver = "unknown"
	}
	if !v.Approve {
		return d, nil
	}
	d.Remember = firstNonEmpty(v.Remember, p.Request.Remember, q.settings().remember)
	until, err := ParseRemember(d.Remember, now)
	if err != nil {
		return Decision{}, err
	}
	d.Until = until
	return d, nil
}

// decided logs, counts and audits a person's decision.
func (q *Queue) decided(p Pending, d Decision) {
	result := ResultDenied
	if d.Approved {
		result = ResultApproved
	}
	q.count(result)
	q.log.Info("approval decided", zap.String(fieldID, p.ID), zap.String(fieldAgent, p.Agent),
		zap.String(fieldRule, p.Rule), zap.String(fieldHost, p.Host), zap.String(fieldResult, result),
		zap.String(fieldApprover, d.Approver), zap.String(fieldRemember, d.Remember), zap.String(fieldReason, d.Reason))
	if q.cfg.OnOutcome != nil {
		q.cfg.OnOutcome(Outcome{Pending: p, Result: result, Decision: d})
	}
}

func (q *Queue) count(result string) {
	if q.cfg.Metrics != nil {
		q.cfg.Metrics.Total.WithLabelValues(result).Inc()
	}
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// idEncoding spells ids in lowercase letters and digits, easy to type.
var idEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// newID returns a fresh pending id such as "ap-k3m9x2qw7r".
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "ap-" + strings.ToLower(idEncoding.EncodeToString(b[:]))[:10]
}

// live are the settings [Queue.Reconfigure] swaps (a policy reload).
type live struct {
	timeout  time.Duration
	remember string
	notifier Notifier
}

func (q *Queue) settings() live {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.live
}

// Reconfigure applies a reloaded policy's approvals section: the hold
// timeout (0 = DefaultTimeout), the default remember ("" = session) and the
// notifier (nil: none). Requests already held keep their timer. It returns
// the notifier it replaced, for the caller to close.
func (q *Queue) Reconfigure(timeout time.Duration, remember string, n Notifier) (Notifier, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if remember == "" {
		remember = RememberSession
	}
	if _, err := ParseRemember(remember, q.cfg.Now()); err != nil {
		return nil, fmt.Errorf("approvals.remember: %w", err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	old := q.live.notifier
	q.live = live{timeout: timeout, remember: remember, notifier: n}
	return old, nil
}
