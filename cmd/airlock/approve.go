package main

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/airlock/airlock/cmd/internal/stack"
	"github.com/airlock/airlock/proxy"
)

// startApprovals starts serve's approval queue (remembered approvals in
// <home>/approvals.json, policy.proposed.yaml beside the policy) and the
// console behind the admin token.
func startApprovals(g *globals, srv *proxy.Server, o *serveOptions, adminAddr string, log *zap.Logger) (*stack.Approvals, error) {
	adminURL := ""
	if adminAddr != "off" {
		adminURL = "http://" + adminAddr
	}
	a, err := stack.StartApprovals(srv, stack.ApprovalOptions{Home: g.home.Dir(), PolicyPath: o.policyPath,
		AdminToken: o.adminToken, AdminURL: adminURL, UsageFile: usageStatePath(g.home), Log: log,
		Store: o.stack.ApprovalStore()}) // fleet mode: Redis
	if err != nil {
		return nil, withHint(err, "check "+g.home.Dir()+"/approvals.json and the approvals section of "+o.policyPath)
	}
	return a, nil
}

// consoleHandler is the console to mount, or nil.
func consoleHandler(a *stack.Approvals) http.Handler {
	if a == nil || a.Console == nil {
		return nil
	}
	return a.Console
}
