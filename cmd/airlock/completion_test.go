package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBashCompletion sources the generated script in bash and asks it to
// complete partial command lines.
func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	t.Parallel()
	e := newEnv(t)
	script := filepath.Join(t.TempDir(), "airlock.bash")
	writeFile(t, script, e.ok("", "completion", "bash").stdout)
	cases := map[string]struct {
		words []string // the last one is being completed
		want  string
	}{
		"command":                  {words: []string{"airlock", "va"}, want: "vault"},
		"every command":            {words: []string{"airlock", "d"}, want: "demo doctor"},
		"sub-command":              {words: []string{"airlock", "vault", "l"}, want: "list"},
		"ca sub-commands":          {words: []string{"airlock", "ca", ""}, want: "export install"},
		"after global flags":       {words: []string{"airlock", "--home", "/tmp/x", "ag"}, want: "agent"},
		"files after sub-command":  {words: []string{"airlock", "policy", "check", filepath.Join(filepath.Dir(script), "airl")}, want: script},
		"completion's own command": {words: []string{"airlock", "compl"}, want: "completion"},
		"nested group":             {words: []string{"airlock", "source", "add", ""}, want: "helvetisafe vault-kv exec file"},
		"nested leaf's flags":      {words: []string{"airlock", "source", "add", "exec", "pass", "--fi"}, want: "--first-line"},
		"approvals sub-commands":   {words: []string{"airlock", "approvals", "a"}, want: "approve"},
		"a leaf's flags":           {words: []string{"airlock", "approvals", "approve", "ap-1", "--al"}, want: "--always"},
		"vault set-ref":            {words: []string{"airlock", "vault", "set-r"}, want: "set-ref"},
		"console":                  {words: []string{"airlock", "cons"}, want: "console"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _airlock; echo "${COMPREPLY[*]}"`
			out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script}, tc.words...)...).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.want {
				t.Errorf("complete %q = %q (%v), want %q", tc.words, out, err, tc.want)
			}
		})
	}
}

// TestCompletionScripts checks each shell's script names every command
// and parses in that shell when it is installed.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			out := e.ok("", "completion", sh).stdout
			for _, c := range commands {
				if !strings.Contains(out, c.name) {
					t.Errorf("%s script lacks command %s", sh, c.name)
				}
			}
			walkTable(commands, nil, func(path []string, c *command) {
				if !strings.Contains(out, c.name) {
					t.Errorf("%s script lacks %s", sh, strings.Join(path, " "))
				}
			})
			if _, err := exec.LookPath(sh); err != nil {
				return // syntax not checked: shell not installed
			}
			file := filepath.Join(t.TempDir(), "airlock."+sh)
			writeFile(t, file, out)
			if msg, err := exec.Command(sh, "-n", file).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, msg)
			}
		})
	}
	wantError(t, e.run("", "completion", "tcsh"), exitUsage, "unknown shell")
}

func TestCAInstallSteps(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	out := e.ok("", "ca", "install").stdout
	ca := filepath.Join(e.home, "ca.pem")
	for _, want := range []string{
		"sudo cp '" + ca + "' /usr/local/share/ca-certificates/airlock.crt", "sudo update-ca-certificates",
		"security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain '" + ca + "'",
		"certutil -d sql:$HOME/.pki/nssdb", "keytool -importcert", "JAVA_TOOL_OPTIONS", "airlock doctor",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ca install output lacks %q\n%s", want, out)
		}
	}
	wantError(t, newEnv(t).run("", "ca", "install"), exitFailure, "read CA certificate")
}

func TestSystemInstallSteps(t *testing.T) {
	cases := map[string]struct {
		goos   string
		debian bool
		first  string // first command, or "" for a refusal
	}{
		"debian":                      {goos: "linux", debian: true, first: "cp"},
		"macOS":                       {goos: "darwin", first: "security"},
		"other linux":                 {goos: "linux"},
		"windows":                     {goos: "windows"},
		"freebsd with the debian dir": {goos: "freebsd", debian: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			steps, err := systemInstallSteps(tc.goos, "/h/ca.pem", tc.debian)
			if tc.first == "" {
				if !errors.Is(err, errNoSystemInstall) || hintOf(err) == "" {
					t.Errorf("want a refusal with a hint, got %v", err)
				}
				return
			}
			if err != nil || len(steps) == 0 || steps[0][0] != tc.first || !strings.Contains(strings.Join(steps[0], " "), "/h/ca.pem") {
				t.Errorf("steps %q, err %v", steps, err)
			}
		})
	}
}
