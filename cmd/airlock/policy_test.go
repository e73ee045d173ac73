package main

import (
	"encoding/json"
	"os"
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

// TestPolicyLintWarnings: `policy check` and `doctor` warn, on stderr with
// file:line:col and the fix command, about names the home lacks; the
// warnings never change the exit code.
func TestPolicyLintWarnings(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("", "agent", "add", "bot")
	e.ok("sk-test-lint-value", "vault", "set", "openai/api-key")
	doctorCode := e.run("", "doctor").code
	cases := map[string]struct {
		file   string
		locked bool // no passphrase: the vault is not opened
		want   string
		absent string
	}{
		"credential missing from the vault": {file: "lint-credential.yaml",
			want: `:6:17: warning: rule anthropic names credential "anthropic/api-key", which the vault does not hold (fix: ` + "`airlock vault set anthropic/api-key`)"},
		"unregistered agent": {file: "lint-agent.yaml",
			want: `:4:19: warning: rule openai names agent "ghost", which is not registered (fix: ` + "`airlock agent add ghost`)"},
		"grant for an unknown credential glob": {file: "lint-glob.yaml",
			want: `:10:31: warning: grants[0] grants credential glob "stripe/*", which matches nothing in the vault (fix: ` + "`airlock vault set stripe/NAME`)"},
		"locked vault: no credential warnings, agents still checked": {file: "lint-agent.yaml", locked: true,
			want: `:4:19: warning: rule openai names agent "ghost"`, absent: "the vault does not hold"},
		"locked vault skips the credential check": {file: "lint-credential.yaml", locked: true, absent: "warning:"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("testdata", "policy", tc.file)
			te := *e
			te.t = t
			if tc.locked {
				te.env = map[string]string{"AIRLOCK_HOME": e.home}
			}
			r := te.run("", "policy", "check", file)
			if r.code != exitOK || r.stdout != "" {
				t.Fatalf("warnings changed the outcome:\n%s", r)
			}
			if tc.want != "" && !strings.Contains(r.stderr, file+tc.want) {
				t.Errorf("policy check stderr lacks %q\n%s", file+tc.want, r)
			}
			if tc.absent != "" && strings.Contains(r.stderr, tc.absent) {
				t.Errorf("policy check stderr has %q\n%s", tc.absent, r)
			}
			if tc.locked {
				return
			}
			if !strings.Contains(r.stderr, "1 warning(s) above") {
				t.Errorf("summary lacks the warning count\n%s", r)
			}
		})
	}
	// doctor: the home's policy.yaml; same warning, same exit code.
	policyFile := filepath.Join(e.home, "policy.yaml")
	writeFile(t, policyFile, string(must1(os.ReadFile(filepath.Join("testdata", "policy", "lint-glob.yaml")))))
	r := e.run("", "doctor")
	want := policyFile + `:10:31: warning: grants[0] grants credential glob "stripe/*"`
	if r.code != doctorCode || !strings.Contains(r.stderr, want) || strings.Contains(r.stdout, "warning: grants") {
		t.Errorf("doctor: exit %d (want %d as before), stderr lacks %q or stdout has it\n%s", r.code, doctorCode, want, r)
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
