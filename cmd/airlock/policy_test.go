package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	r := e.ok("", "policy", "check")
	if !regexp.MustCompile(`airlock: policy .*policy.yaml ok \(\d+ rules, \d+ grants\)`).MatchString(r.stderr) {
		t.Errorf("default policy check:\n%s", r)
	}
	e.ok("", "policy", "check", filepath.Join("testdata", "policy", "good.yaml"))

	bad := filepath.Join("testdata", "policy", "bad.yaml")
	r = e.run("", "policy", "check", bad)
	wantError(t, r, exitFailure, "problem")
	lineRE := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(bad) + `:\d+:\d+: \S`)
	if n := len(lineRE.FindAllString(r.stderr, -1)); n < 1 {
		t.Errorf("want file:line:col lines on stderr\n%s", r)
	}
}

func TestPolicyExplain(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	good := filepath.Join("testdata", "policy", "good.yaml")
	r := e.ok("", "policy", "explain", "--policy", good, "--agent", "bot", "GET", "https://api.openai.com/v1/models")
	if !strings.Contains(r.stdout, "openai") || !strings.Contains(r.stdout, "openai/api-key") {
		t.Errorf("explain:\n%s", r)
	}
	r = e.ok("", "policy", "explain", "--json", "--policy", good, "--agent", "bot", "DELETE", "https://api.openai.com/v1/models")
	var ex explanationJSON
	must(t, json.Unmarshal([]byte(r.stdout), &ex))
	if ex.Decision != "deny" || ex.Rule != "" {
		t.Errorf("DELETE should be denied: %+v", ex)
	}
	wantError(t, e.run("", "policy", "explain", "--agent", "bot", "GET", "not a url"), exitUsage, "invalid URL")
}
