package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// ExecConfig is a command whose stdout is the secret: 1Password `op read`,
// `pass show`, `gopass show -o`, `aws secretsmanager get-secret-value`,
// macOS `security find-generic-password -w`.
type ExecConfig struct {
	// Argv is the command, run without a shell. Every "{key}" in an
	// argument is replaced by the credential's key; with none, the key is
	// not passed (a fixed command per source).
	Argv []string
	// Env lists the variables passed from airlock's environment (PATH and
	// HOME always are); everything else is dropped.
	Env []string
	// SetEnv are fixed NAME=VALUE variables (not secrets: the vault holds
	// secrets, and a child's environment is readable by the same user).
	SetEnv    []string
	Timeout   time.Duration // default 10 s
	FirstLine bool          // keep only the first line of stdout (pass's convention)
}

// maxExecOutput bounds what a command may print.
const maxExecOutput = 64 << 10

// Exec is a [Source] and [Checker] running a command per fetch.
type Exec struct{ cfg ExecConfig }

// NewExec checks cfg: the command must exist now.
func NewExec(cfg ExecConfig) (*Exec, error) {
	if len(cfg.Argv) == 0 || cfg.Argv[0] == "" {
		return nil, errors.New("exec: no command")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	for _, kv := range cfg.SetEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("exec: environment entry %q: want NAME=VALUE", k)
		}
	}
	e := &Exec{cfg: cfg}
	if err := e.Check(context.Background()); err != nil {
		return nil, err
	}
	return e, nil
}

// Check reports whether the command is found.
func (e *Exec) Check(context.Context) error {
	if _, err := exec.LookPath(e.cfg.Argv[0]); err != nil {
		return fmt.Errorf("exec: command %q not found in PATH: %w", e.cfg.Argv[0], ErrUnavailable)
	}
	return nil
}

func (e *Exec) env() []string {
	env := []string{}
	for _, name := range append([]string{"PATH", "HOME"}, e.cfg.Env...) {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return append(env, e.cfg.SetEnv...)
}

// Fetch runs the command for key. Errors name the command (argv[0]), the
// exit status and the first line of stderr, with any stdout line removed
// from it: never the value.
func (e *Exec) Fetch(ctx context.Context, skey string) (Value, error) {
	key, field, version, err := ParseKey(skey)
	if err != nil || version != 0 {
		return Value{}, fmt.Errorf("exec: key %q: no versions here: %w", skey, ErrNotFound)
	}
	if strings.HasPrefix(key, "-") {
		return Value{}, fmt.Errorf("exec: key %q must not start with '-': %w", key, ErrNotFound)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	argv := make([]string, len(e.cfg.Argv))
	for i, a := range e.cfg.Argv {
		argv[i] = strings.ReplaceAll(a, "{key}", key)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = e.env()
	cmd.Stdin = nil
	killGroupOnCancel(cmd)
	cmd.WaitDelay = time.Second
	var stdout, stderr capped
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := stdout.Bytes()
	name := argv[0]
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return Value{}, fmt.Errorf("exec: %s timed out after %s: %w", name, e.cfg.Timeout, ErrUnavailable)
	case runErr != nil:
		return Value{}, fmt.Errorf("exec: %s: %s%s: %w", name, exitText(runErr), stderrLine(stderr.Bytes(), out), ErrUnavailable)
	case stdout.over:
		return Value{}, fmt.Errorf("exec: %s printed more than %d bytes: %w", name, maxExecOutput, ErrUnavailable)
	}
	if e.cfg.FirstLine {
		out, _, _ = bytes.Cut(out, []byte("\n"))
	}
	out = bytes.TrimSuffix(bytes.TrimSuffix(out, []byte("\n")), []byte("\r"))
	if field != "" {
		if out, err = jsonField(out, field); err != nil {
			return Value{}, fmt.Errorf("exec: %s: %w", name, err)
		}
	}
	if len(out) == 0 {
		return Value{}, fmt.Errorf("exec: %s printed nothing: %w", name, ErrNotFound)
	}
	return Value{Secret: vault.NewSecret(out), Kind: vault.KindStatic}, nil
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

// stderrLine is ": FIRST LINE" of stderr (at most 200 bytes), with every
// non-empty line of stdout replaced: a failing command may have printed
// part of the value.
func stderrLine(stderr, stdout []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(stderr), []byte("\n"))
	line = bytes.TrimSpace(line)
	for _, l := range bytes.Split(stdout, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) >= 4 {
			line = bytes.ReplaceAll(line, l, []byte("[REDACTED]"))
		}
	}
	if len(line) == 0 {
		return ""
	}
	if len(line) > 200 {
		line = line[:200]
	}
	return ": " + strings.ToValidUTF8(string(line), "?")
}

// capped is a buffer keeping the first maxExecOutput bytes.
type capped struct {
	buf  bytes.Buffer
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := maxExecOutput - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) Bytes() []byte { return c.buf.Bytes() }
