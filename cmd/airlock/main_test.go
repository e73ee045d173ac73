package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/testkit"
)

// airlockBin is the binary TestMain builds once (with -race when the tests
// have it) for every subprocess test.
var airlockBin string

const testPassphrase = "correct horse battery staple"

// TestMain builds airlock once and runs the tests with GORACE set so the
// -race subprocesses do not sleep at exit. AIRLOCK_TEST_BIN runs the
// end-to-end tests against another build, e.g. the code before a fix, to
// see the hostile tests fail there.
func TestMain(m *testing.M) {
	os.Exit(testkit.Main(m, &airlockBin, ".", os.Getenv("AIRLOCK_TEST_BIN")))
}

// tenv runs the airlock binary against one temporary home.
type tenv struct {
	t    *testing.T
	home string
	env  map[string]string
}

func newEnv(t *testing.T) *tenv {
	t.Helper()
	e := &tenv{t: t, home: filepath.Join(t.TempDir(), "home"), env: map[string]string{}}
	e.env["AIRLOCK_HOME"] = e.home
	e.env["AIRLOCK_INSECURE_FAST_KDF"] = "1"
	e.env["AIRLOCK_PASSPHRASE"] = testPassphrase
	return e
}

// initEnv is newEnv plus a successful `airlock init`.
func initEnv(t *testing.T) *tenv {
	t.Helper()
	e := newEnv(t)
	e.ok("", "init")
	return e
}

func (e *tenv) vaultPath() string { return filepath.Join(e.home, "airlock.vault") }

// result is one finished command.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("airlock %q: exit %d\nstdout:\n%s\nstderr:\n%s", r.args, r.code, r.stdout, r.stderr)
}

// run runs airlock with stdin (a pipe, never a terminal).
func (e *tenv) run(stdin string, args ...string) result {
	e.t.Helper()
	return e.runWith(strings.NewReader(stdin), args...)
}

func (e *tenv) runWith(stdin io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, airlockBin, args...)
	cmd.Env = e.environ()
	cmd.Stdin = stdin
	// A new session has no controlling terminal: airlock cannot fall back
	// to prompting on /dev/tty even when the tests run in one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("airlock %q did not finish in time (hang?)", args)
	}
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run airlock %q: %v", args, err)
	}
	checkNoPanic(e.t, r)
	return r
}

// environ is the test process environment without AIRLOCK_* variables,
// plus this env's settings.
func (e *tenv) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIRLOCK_") {
			env = append(env, kv)
		}
	}
	for k, v := range e.env {
		env = append(env, k+"="+v)
	}
	return env
}

// ok runs a command that must succeed.
func (e *tenv) ok(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

func checkNoPanic(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{"panic", "goroutine "} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("output contains %q\n%s", s, r)
		}
	}
}

// wantError checks exit code, the error message and a hint line.
func wantError(t *testing.T, r result, code int, msg string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\n%s", r.code, code, r)
	}
	if !strings.Contains(r.stderr, "airlock: error: ") || !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(msg)) {
		t.Errorf("stderr lacks error %q\n%s", msg, r)
	}
	if !strings.Contains(r.stderr, "\nairlock: hint: ") {
		t.Errorf("stderr lacks a hint line\n%s", r)
	}
}
