package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickstartMarker marks a README code block the tests run.
const quickstartMarker = "<!-- test: quickstart -->"

// markedBlocks returns the bodies of the fenced code blocks that directly
// follow a quickstartMarker line. A "$ " prompt at the start of a line is
// dropped.
func markedBlocks(md []byte) []string {
	var blocks []string
	var cur *strings.Builder
	marked := false
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && strings.HasPrefix(trimmed, "```"):
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(strings.TrimPrefix(line, "$ ") + "\n")
		case marked && strings.HasPrefix(trimmed, "```"):
			cur = &strings.Builder{}
		}
		marked = cur == nil && trimmed == quickstartMarker
	}
	return blocks
}

func TestReadmeBlocks(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile(filepath.Join("testdata", "readme", "README.md"))
	must(t, err)
	got := markedBlocks(md)
	want := []string{"# a comment\nairlock init\nprintf '%s' \"sk-x\" | airlock vault set a/b\n", "airlock vault list\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("blocks %q, want %q", got, want)
	}
	runQuickstart(t, got) // the fixture runs like the README does
}

// TestReadmeQuickstart runs the README's marked quick-start blocks
// literally, so the README cannot drift from the CLI.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	blocks := markedBlocks(md)
	if len(blocks) == 0 {
		t.Fatalf("README.md has no code block marked %q: mark the quick start so this test runs it", quickstartMarker)
	}
	runQuickstart(t, blocks)
}

// runQuickstart runs blocks in order in one `bash -euo pipefail`, in a
// temp dir with the freshly built airlock first on PATH and a throwaway
// home. A test API on loopback is offered as $UPSTREAM_URL and
// $UPSTREAM_CA; background jobs are killed at the end.
func runQuickstart(t *testing.T, blocks []string) {
	t.Helper()
	dir := t.TempDir()
	api := newTestAPI(t)
	env := []string{
		"PATH=" + filepath.Dir(airlockBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir, "AIRLOCK_HOME=" + filepath.Join(dir, "airlock-home"),
		"AIRLOCK_PASSPHRASE=" + testPassphrase, "AIRLOCK_INSECURE_FAST_KDF=1",
		"AIRLOCK_LISTEN=" + freeAddr(t), "AIRLOCK_ADMIN=" + freeAddr(t),
		"UPSTREAM_URL=" + api.url, "UPSTREAM_CA=" + api.caFile,
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "PATH" && k != "HOME" && !strings.HasPrefix(k, "AIRLOCK_") && !strings.Contains(strings.ToLower(k), "proxy") {
			env = append(env, kv)
		}
	}
	script := strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader("")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // `airlock serve &` and friends
	}
	if err != nil {
		t.Fatalf("quick start failed: %v\nscript:\n%s\noutput:\n%s", err, script, out.String())
	}
	if strings.Contains(out.String(), "panic") {
		t.Fatalf("quick start output has a panic:\n%s", out.String())
	}
}

// Terminal prompts the quick start meets, and the shell prompts of the
// session that types it.
const (
	ps1        = "[qs]$ "
	ps2        = "[qs]> "
	promptNew  = "new vault passphrase: "
	promptPass = "vault passphrase: "
	promptRe   = "again: "
)

// ptyEnv is a clean environment for a person's terminal session: the
// built airlock on PATH, a throwaway HOME and airlock home, free ports,
// and no passphrase (it is typed at the prompts).
func ptyEnv(t *testing.T, dir string, api *testAPI) []string {
	env := []string{
		"PATH=" + filepath.Dir(airlockBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir, "AIRLOCK_HOME=" + filepath.Join(dir, "airlock-home"), "AIRLOCK_INSECURE_FAST_KDF=1",
		"AIRLOCK_LISTEN=" + freeAddr(t), "AIRLOCK_ADMIN=" + freeAddr(t),
		"TERM=dumb", "PS1=" + ps1, "PS2=" + ps2,
	}
	if api != nil {
		env = append(env, "UPSTREAM_URL="+api.url)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "HOME", k == "TERM", k == "PS1", k == "PS2", strings.HasPrefix(k, "AIRLOCK_"),
			strings.Contains(strings.ToLower(k), "proxy"), k == "SSL_CERT_FILE":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// typeLine types one line in the shell and answers every passphrase
// prompt until the shell asks for the next line.
func typeLine(sh *ptySession, line string) {
	sh.t.Helper()
	sh.send(line + "\n")
	for {
		switch sh.expect(60*time.Second, ps1, ps2, promptNew, promptPass, promptRe) {
		case ps1, ps2:
			return
		default:
			sh.send(testPassphrase + "\n")
		}
	}
}

// TestReadmeQuickstartInPTY types the README's quick start line by line
// into an interactive bash on a pseudo-terminal, with no passphrase in the
// environment: every prompt is answered at the terminal, as a person
// would (`printf KEY | airlock vault set` included: stdin is a pipe there,
// the prompt comes on /dev/tty). Then, as the README says next, it starts
// `airlock serve` in a second terminal (console log format there) and
// gets an injected request through `airlock run`.
func TestReadmeQuickstartInPTY(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	md, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	must(t, err)
	blocks := markedBlocks(md)
	if len(blocks) == 0 {
		t.Fatalf("README.md has no code block marked %q", quickstartMarker)
	}
	dir := t.TempDir()
	api := newTestAPI(t)
	env := ptyEnv(t, dir, api)
	sh := startPTY(t, dir, env, "bash", "--norc", "--noprofile", "-i")
	sh.expect(30*time.Second, ps1)
	typeLine(sh, "set -euo pipefail")
	for _, b := range blocks {
		for _, line := range strings.Split(strings.TrimRight(b, "\n"), "\n") {
			typeLine(sh, line)
		}
	}
	// The person edits policy.yaml for the API they use (here: the test API).
	home := filepath.Join(dir, "airlock-home")
	writeFile(t, filepath.Join(home, "policy.yaml"), apiPolicy(api, "openai/api-key"))

	// "Then, in one terminal `airlock serve`".
	srvEnv := append(append([]string{}, env...), "SSL_CERT_FILE="+api.caFile)
	srv := startPTY(t, dir, srvEnv, airlockBin, "serve")
	srv.expect(30*time.Second, promptPass)
	srv.send(testPassphrase + "\n")
	srv.expect(30*time.Second, "listening")
	if strings.Contains(srv.out.String(), `{"level"`) {
		t.Errorf("serve on a terminal logs JSON, want the console format:\n%s", srv.out.String())
	}

	// "and in another run the agent with no key".
	typeLine(sh, `airlock run --agent bot -- curl -sS --fail "$UPSTREAM_URL/v1/models"`)
	if want := digestHex("Bearer sk-your-openai-key"); !strings.Contains(sh.out.String(), want) {
		t.Fatalf("the request did not arrive with the key injected (want digest %s)\nterminal:\n%s", want, sh.out.String())
	}
	typeLine(sh, "echo quickstart-ok")
	sh.send("exit\n")
	if code := sh.wait(30 * time.Second); code != 0 {
		t.Fatalf("shell exit %d\nterminal:\n%s", code, sh.out.String())
	}
	srv.send("\x03") // Ctrl-C
	srv.expect(30*time.Second, "stopped")
}

// TestPassphraseAtTerminal: a vault command whose stdin is a pipe asks on
// the controlling terminal; a person gets three tries at a wrong
// passphrase.
func TestPassphraseAtTerminal(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		script  string   // run by sh on the pty
		answers []string // typed at each passphrase prompt
		code    int
		want    string
	}{
		"piped stdin prompts on /dev/tty": {script: "printf sk-x | airlock vault set a/b", answers: []string{testPassphrase}, want: "stored a/b"},
		"second try":                      {script: "airlock vault list </dev/null", answers: []string{"wrong", testPassphrase}, want: "PATH"},
		"third try":                       {script: "airlock vault list", answers: []string{"wrong", "wrong again", testPassphrase}, want: "PATH"},
		"three wrong":                     {script: "airlock vault list", answers: []string{"a", "b", "c"}, code: exitFailure, want: "wrong passphrase"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := initEnv(t)
			dir := t.TempDir()
			env := append(ptyEnv(t, dir, nil), "AIRLOCK_HOME="+e.home)
			s := startPTY(t, dir, env, "sh", "-c", tc.script)
			for i, a := range tc.answers {
				s.expect(30*time.Second, promptPass)
				if i > 0 && !strings.Contains(s.out.String(), fmt.Sprintf("try again (%d of 3)", i+1)) {
					t.Errorf("no retry notice before try %d\n%s", i+1, s.out.String())
				}
				s.send(a + "\n")
			}
			code := s.wait(30 * time.Second)
			if code != tc.code || !strings.Contains(s.out.String(), tc.want) {
				t.Fatalf("exit %d, want %d and %q\nterminal:\n%s", code, tc.code, tc.want, s.out.String())
			}
			if n := strings.Count(s.out.String(), promptPass); n != len(tc.answers) {
				t.Errorf("%d prompts, want %d\n%s", n, len(tc.answers), s.out.String())
			}
		})
	}
}
