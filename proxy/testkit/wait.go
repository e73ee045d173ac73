package testkit

import (
	"errors"
	"testing"
	"time"
)

// pollEvery is how long [WaitFor] sleeps between two calls of fn.
const pollEvery = 10 * time.Millisecond

// WaitFor calls fn until it returns nil, and fails the test with fn's last
// error if it has not within d.
//
//	testkit.WaitFor(t, 2*time.Second, func() error { return probe(proxyAddr) })
func WaitFor(tb testing.TB, d time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(pollEvery)
	}
}

// WaitUntil is [WaitFor] for a boolean condition: it fails the test with
// "not within d: what" (what the test waits for) if cond is still false
// after d.
func WaitUntil(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	WaitFor(tb, d, func() error {
		if !cond() {
			return errors.New(what)
		}
		return nil
	})
}
