package main

import (
	"io"
	"testing"
)

// TestDemoRunsTheApprovalQueue: the demo's airlock runs the approval queue
// as serve does, so a rule with `approval: required` is held for a person
// rather than refused with "no approval queue runs".
func TestDemoRunsTheApprovalQueue(t *testing.T) {
	d := &demo{out: io.Discard}
	defer d.cleanup()
	for _, step := range []func() error{d.setup, d.startAPI, d.startAirlock} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if d.srv.Approvals() == nil {
		t.Fatal("the demo's server has no approval queue")
	}
}
