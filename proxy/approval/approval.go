// Package approval holds requests until a person decides: the approval
// queue behind `approval: required` rules and `egress.unmatched: ask`.
//
// # Holding
//
// [Queue.Wait] is called by the pipeline after the rule is matched and before
// any credential is read. It returns at once when an earlier approval is
// remembered for the request's key; otherwise it joins the one pending entry
// for that key (concurrent requests share it), and blocks until a person
// decides ([Queue.Decide]), the timeout passes ([TimeoutError]) or the caller
// gives up (the last waiter to leave cancels the entry).
//
// # Keys
//
// A request for a rule is keyed by (agent, rule); a request no rule matched
// is keyed by (agent, host). An approval covers its key, for once (the held
// requests only), a duration, the session (until serve restarts) or always
// (persisted by the [Store]).
//
// # Fleet
//
// Pending entries, decisions and durable remembered approvals live behind
// [Store]. [LocalStore] keeps them in memory and a file; a Redis store must
// satisfy the same interface, with [Store.Subscribe] carrying a decision made
// on one replica to the waiters held on another.
package approval

import (
	"errors"
	"fmt"
	"time"
)

// Remember values: what an approval covers beyond the requests it releases.
// Any Go duration ("1h", "30m") is valid too.
const (
	RememberOnce    = "once"
	RememberSession = "session"
	RememberAlways  = "always"
)

// Results counted in airlock_approvals_total{result} and given to the audit
// hook as [Outcome.Result].
const (
	ResultApproved   = "approved"
	ResultDenied     = "denied"
	ResultTimeout    = "timeout"
	ResultCancelled  = "cancelled"
	ResultRemembered = "remembered"
)

// DefaultTimeout is how long a request is held when Config.Timeout is zero.
const DefaultTimeout = 120 * time.Second

// Sentinel errors callers branch on.
var (
	// ErrDenied: a person refused (the error is a *DeniedError).
	ErrDenied = errors.New("approval denied")
	// ErrTimeout: nobody decided in time (the error is a *TimeoutError).
	ErrTimeout = errors.New("approval timed out")
	// ErrCancelled: the caller's context ended while it was held.
	ErrCancelled = errors.New("approval wait cancelled")
	// ErrNotFound: no pending entry has this id (decided, timed out,
	// cancelled, or never existed).
	ErrNotFound = errors.New("no pending approval with this id")
	// ErrBadRemember: a remember value that is not once, session, always or
	// a positive duration.
	ErrBadRemember = errors.New("bad remember value")
)

// Request is what the pipeline asks approval for. Method and Path are for
// the person deciding (Path without the query); the key is (Agent, Rule), or
// (Agent, Host) when Unmatched.
type Request struct {
	Agent     string `json:"agent"`
	Rule      string `json:"rule,omitempty"`
	Method    string `json:"method"`
	Host      string `json:"host"`
	Path      string `json:"path"`
	Unmatched bool   `json:"unmatched,omitempty"`
	// Remember is the rule's default for an approval that names none
	// ("" = the queue's default).
	Remember string `json:"remember,omitempty"`
}

// Key is the value approvals are shared and remembered under.
func (r Request) Key() string {
	if r.Unmatched {
		return "host\x00" + r.Agent + "\x00" + r.Host
	}
	return "rule\x00" + r.Agent + "\x00" + r.Rule
}

// Pending is one held entry, shared by every waiter with the same key.
type Pending struct {
	ID      string    `json:"id"`
	Key     string    `json:"-"`
	Request           // the first request that opened the entry
	Created time.Time `json:"created"`
	Waiters int       `json:"waiters"`
}

// Verdict is what a person decides about a pending entry.
type Verdict struct {
	Approve  bool
	Remember string // once, session, always or a duration; "" = default
	Approver string // who decided: "cli:alice", "console", "api"
	Reason   string // optional, shown to the agent on deny
}

// Decision is the outcome of a pending entry or of a remembered approval.
type Decision struct {
	ID         string    `json:"id"`
	Key        string    `json:"-"`
	Request    Request   `json:"request"`
	Approved   bool      `json:"approved"`
	Remember   string    `json:"remember,omitempty"`
	Until      time.Time `json:"until,omitzero"` // zero: no end (session, always) or once
	Approver   string    `json:"approver"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
	Remembered bool      `json:"remembered,omitempty"` // Wait answered from a remembered approval
}

// covers reports whether a remembered decision still applies at now.
func (d Decision) covers(now time.Time) bool {
	return d.Approved && (d.Until.IsZero() || now.Before(d.Until))
}

// durable reports whether the store must keep the decision for its key
// beyond the entry (always, or a duration).
func (d Decision) durable() bool {
	return d.Approved && d.Remember != RememberOnce && d.Remember != RememberSession
}

// DeniedError is returned by Wait when a person refused.
type DeniedError struct {
	ID       string
	Approver string
	Reason   string
}

func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("approval %s denied by %s", e.ID, e.Approver)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// TimeoutError is returned by Wait when nobody decided within After.
type TimeoutError struct {
	ID    string
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("approval %s: nobody decided within %s", e.ID, e.After)
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Error codes of the proxy's refusals (proxy/errcode has the same names).
const (
	CodeDenied  = "APPROVAL_DENIED"
	CodeTimeout = "APPROVAL_TIMEOUT"
)

// Refusal is what the proxy's 403 says for an error from Wait: the error
// code, a detail naming the pending id, and how to approve next time. ok is
// false for other errors (cancelled, store failure), which are not
// refusals by a person.
func Refusal(err error) (code, detail, suggestion string, ok bool) {
	var de *DeniedError
	var te *TimeoutError
	switch {
	case errors.As(err, &de):
		return CodeDenied, de.Error(),
			"ask the approver; a later request is held again and can be approved with `airlock approvals approve ID` or in the console", true
	case errors.As(err, &te):
		return CodeTimeout, te.Error(),
			"retry the request and approve it while it is held: `airlock approvals` lists it, " +
				"`airlock approvals approve ID --for 1h` (or --always) lets later requests pass at once; `airlock console` does the same", true
	}
	return "", "", "", false
}

// ParseRemember checks a remember value and returns the end of the approval
// it implies at now (zero for once, session and always).
func ParseRemember(s string, now time.Time) (time.Time, error) {
	switch s {
	case RememberOnce, RememberSession, RememberAlways:
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%w %q (want once, session, always or a duration such as 1h)", ErrBadRemember, s)
	}
	return now.Add(d), nil
}
