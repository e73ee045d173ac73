package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// passStore makes a real `pass` store with a throwaway GPG key without
// passphrase in a temporary GNUPGHOME, and inserts name=value.
func passStore(t *testing.T, entries map[string]string) (gnupg, store string) {
	t.Helper()
	for _, tool := range []string{"pass", "gpg", "gpgconf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (.ci/run installs pass and gnupg)", tool)
		}
	}
	// A short path: gpg-agent's socket lives in GNUPGHOME (108-byte limit).
	gnupg, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	store = t.TempDir()
	env := append(os.Environ(), "GNUPGHOME="+gnupg, "PASSWORD_STORE_DIR="+store)
	run := func(stdin string, name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Stdin = env, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "gpg-agent")
		cmd.Env = env
		_ = cmd.Run()
		_ = os.RemoveAll(gnupg)
	})
	run("", "gpg", "--batch", "--passphrase", "", "--quick-generate-key", "airlock test <test@airlock.invalid>", "default", "default", "never")
	run("", "pass", "init", "test@airlock.invalid")
	for name, value := range entries {
		run(value+"\nsecond line of the entry\n", "pass", "insert", "--multiline", name)
	}
	return gnupg, store
}

func execDef(argv string, extra map[string]string) *vault.SourceDef {
	d := &vault.SourceDef{Name: "exec-test", Type: TypeExec, Config: map[string]string{"argv": argv}}
	for k, v := range extra {
		d.Config[k] = v
	}
	return d
}

// TestExecPass reads from a real pass store, first line only, with the
// environment reduced to PATH, HOME and the two variables pass needs.
func TestExecPass(t *testing.T) {
	const value = "pass-VALUE-7f3e9a1c"
	gnupg, store := passStore(t, map[string]string{"airlock/openai": value})
	t.Setenv("GNUPGHOME", gnupg)
	t.Setenv("PASSWORD_STORE_DIR", store)
	o := newObserved(t)
	src, opts, err := Build(execDef(`["pass","show","{key}"]`, map[string]string{
		"env": "GNUPGHOME,PASSWORD_STORE_DIR", "first_line": "true", "timeout": "20s"}))
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache("pass", src, opts, o.m, o.log)
	defer c.Close()
	v, err := c.Fetch(context.Background(), "airlock/openai")
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Secret.Bytes()) != value {
		t.Fatalf("got %q", v.Secret.Bytes())
	}
	_, err = c.Fetch(context.Background(), "airlock/missing")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "exit status 1") ||
		!strings.Contains(err.Error(), "is not in the password store") {
		t.Fatalf("missing entry: %v", err)
	}
	assertNoLeak(t, "logs", o.logs(), value, "second line of the entry")
	assertNoLeak(t, "metrics", o.metrics(), value)
	assertNoLeak(t, "error", err.Error(), value)
	if _, err := c.Fetch(context.Background(), "--help"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key that is an option: %v", err)
	}
}

// TestExecFailures: a hanging command (and its children) is killed at the
// timeout; a failing one reports its exit status and first stderr line,
// with anything it printed on stdout cut out of that line.
func TestExecFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("timeout", func(t *testing.T) {
		src, _, err := Build(execDef(`["sh","-c","sleep 30; echo late"]`, map[string]string{"timeout": "300ms"}))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = src.Fetch(ctx, "k")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "timed out after 300ms") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s: the child kept the pipes open", d)
		}
	})
	t.Run("exit status", func(t *testing.T) {
		const value = "exec-VALUE-leaks-9d8c"
		src, _, err := Build(execDef(`["sh","-c","printf '`+value+`'; echo \"fatal: cannot use `+value+` here\" >&2; echo second-line-detail >&2; exit 3"]`, nil))
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Fetch(ctx, "k")
		msg := err.Error()
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "fatal: cannot use [REDACTED] here") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(msg, "second-line-detail") {
			t.Fatalf("more than the first stderr line: %v", err)
		}
		assertNoLeak(t, "error", msg, value)
	})
	t.Run("reduced env", func(t *testing.T) {
		t.Setenv("AIRLOCK_PASSPHRASE", "parent-passphrase-must-not-pass")
		t.Setenv("KEEP_ME", "kept")
		src, _, err := Build(execDef(`["env"]`, map[string]string{"env": "KEEP_ME", "setenv": `["FIXED=1"]`}))
		if err != nil {
			t.Fatal(err)
		}
		v, err := src.Fetch(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		env := string(v.Secret.Bytes())
		if strings.Contains(env, "AIRLOCK_PASSPHRASE") || !strings.Contains(env, "KEEP_ME=kept") || !strings.Contains(env, "FIXED=1") {
			t.Fatalf("child environment:\n%s", env)
		}
	})
	t.Run("not found at setup", func(t *testing.T) {
		if _, _, err := Build(execDef(`["no-such-command-airlock"]`, nil)); err == nil || !strings.Contains(err.Error(), "not found in PATH") {
			t.Fatalf("err = %v", err)
		}
	})
}
