package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput runs every bad input of the foundation issue against the
// real binary: exit code, message, hint, no panic.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		setup     func(e *tenv) // after init
		noInit    bool          // start from an empty home
		args      []string
		stdin     string
		code      int
		msg       string
		unchanged bool // the vault file must keep its bytes
	}{
		"wrong passphrase": {
			setup: func(e *tenv) { e.env["AIRLOCK_PASSPHRASE"] = "not the passphrase" },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "wrong passphrase", unchanged: true,
		},
		"wrong passphrase on set": {
			setup: func(e *tenv) { e.env["AIRLOCK_PASSPHRASE"] = "not the passphrase" },
			args:  []string{"vault", "set", "a/b"},
			stdin: "value\n",
			code:  exitFailure, msg: "wrong passphrase", unchanged: true,
		},
		"flipped byte in header": {
			setup: func(e *tenv) { flipByte(e.t, e.vaultPath(), 0.0) },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "corrupt", unchanged: true,
		},
		"flipped byte in body": {
			setup: func(e *tenv) { flipByte(e.t, e.vaultPath(), 0.8) },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "corrupt", unchanged: true,
		},
		"last byte flipped": {
			setup: func(e *tenv) { flipByte(e.t, e.vaultPath(), 1.0) },
			args:  []string{"vault", "get", "a/b"},
			code:  exitFailure, msg: "corrupt", unchanged: true,
		},
		"truncated vault": {
			setup: func(e *tenv) { truncate(e.t, e.vaultPath()) },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "corrupt", unchanged: true,
		},
		"empty vault file": {
			setup: func(e *tenv) { writeFile(e.t, e.vaultPath(), "") },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "corrupt",
		},
		"vault path is a directory": {
			setup: func(e *tenv) {
				must(e.t, os.Remove(e.vaultPath()))
				must(e.t, os.Mkdir(e.vaultPath(), 0o700))
			},
			args: []string{"vault", "list"},
			code: exitFailure, msg: "is a directory",
		},
		"no vault": {
			noInit: true,
			args:   []string{"vault", "list"},
			code:   exitFailure, msg: "no vault at",
		},
		"unknown credential on get": {
			args: []string{"vault", "get", "no/such"},
			code: exitFailure, msg: "no/such: not found", unchanged: true,
		},
		"unknown credential on rm": {
			args: []string{"vault", "rm", "no/such", "--yes"},
			code: exitFailure, msg: "no/such: not found", unchanged: true,
		},
		"init on an existing home": {
			args: []string{"init"},
			code: exitFailure, msg: "already exists", unchanged: true,
		},
		"malformed env line": {
			args: []string{"vault", "import-env", filepath.Join("testdata", "env", "malformed.env")},
			code: exitFailure, msg: "malformed.env:3:", unchanged: true,
		},
		"unterminated quote in env": {
			args: []string{"vault", "import-env", filepath.Join("testdata", "env", "unterminated.env")},
			code: exitFailure, msg: "unterminated.env:1:", unchanged: true,
		},
		"missing env file": {
			args: []string{"vault", "import-env", "testdata/env/nope.env"},
			code: exitFailure, msg: "nope.env", unchanged: true,
		},
		"no passphrase and no tty": {
			setup: func(e *tenv) { delete(e.env, "AIRLOCK_PASSPHRASE") },
			args:  []string{"vault", "list"},
			code:  exitFailure, msg: "no passphrase was given", unchanged: true,
		},
		"no passphrase on init": {
			noInit: true,
			setup:  func(e *tenv) { delete(e.env, "AIRLOCK_PASSPHRASE") },
			args:   []string{"init"},
			code:   exitFailure, msg: "no passphrase was given",
		},
		"missing passphrase file": {
			args: []string{"--passphrase-file", "/nonexistent/pass", "vault", "list"},
			code: exitFailure, msg: "passphrase file", unchanged: true,
		},
		"empty value": {
			args: []string{"vault", "set", "a/b"}, stdin: "\n",
			code: exitFailure, msg: "empty value", unchanged: true,
		},
		"agent twice": {
			setup: func(e *tenv) { e.ok("", "agent", "add", "bot") },
			args:  []string{"agent", "add", "bot"},
			code:  exitFailure, msg: "already exists", unchanged: true,
		},
		"rotate unknown agent": {
			args: []string{"agent", "rotate", "ghost"},
			code: exitFailure, msg: "not found", unchanged: true,
		},
		"env without agents": {
			args: []string{"env"},
			code: exitFailure, msg: "no agent key files",
		},
		"invalid policy on check": {
			setup: func(e *tenv) { writeFile(e.t, filepath.Join(e.home, "policy.yaml"), badPolicy) },
			args:  []string{"policy", "check"},
			code:  exitFailure, msg: "has 2 problem(s)", unchanged: true,
		},
		"invalid policy on serve": {
			setup: func(e *tenv) { writeFile(e.t, filepath.Join(e.home, "policy.yaml"), badPolicy) },
			args:  []string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"},
			code:  exitFailure, msg: "policy.yaml:4:5", unchanged: true,
		},
		"wrong passphrase on serve": {
			setup: func(e *tenv) { e.env["AIRLOCK_PASSPHRASE"] = "not the passphrase" },
			args:  []string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"},
			code:  exitFailure, msg: "wrong passphrase", unchanged: true,
		},
		"tampered vault on serve": {
			setup: func(e *tenv) { flipByte(e.t, e.vaultPath(), 0.5) },
			args:  []string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"},
			code:  exitFailure, msg: "corrupt", unchanged: true,
		},
		"no passphrase on serve": {
			setup: func(e *tenv) { delete(e.env, "AIRLOCK_PASSPHRASE") },
			args:  []string{"serve", "--listen", "127.0.0.1:0", "--admin", "off"},
			code:  exitFailure, msg: "no passphrase was given", unchanged: true,
		},
		"doctor on a broken home": {
			setup: func(e *tenv) { writeFile(e.t, filepath.Join(e.home, "policy.yaml"), badPolicy) },
			args:  []string{"doctor"},
			code:  exitFailure, msg: "broken check", unchanged: true,
		},
		"usage: unknown command": {
			args: []string{"frobnicate"},
			code: exitUsage, msg: "unknown command",
		},
		"usage: unknown subcommand": {
			args: []string{"vault", "frobnicate"},
			code: exitUsage, msg: "unknown command",
		},
		"usage: missing path": {
			args: []string{"vault", "set"},
			code: exitUsage, msg: "missing argument",
		},
		"usage: extra argument": {
			args: []string{"vault", "get", "a/b", "c/d"},
			code: exitUsage, msg: "unexpected argument",
		},
		"usage: unknown flag": {
			args: []string{"vault", "list", "--bogus"},
			code: exitUsage, msg: "flag provided but not defined",
		},
		"usage: bad expires": {
			args: []string{"vault", "set", "a/b", "--expires", "soon"}, stdin: "v",
			code: exitUsage, msg: "--expires",
		},
		"usage: expires in the past": {
			args: []string{"vault", "set", "--expires=2001-01-01T00:00:00Z", "a/b"}, stdin: "v",
			code: exitUsage, msg: "in the past",
		},
		"usage: bad credential path": {
			args: []string{"vault", "set", "../etc"}, stdin: "v",
			code: exitUsage, msg: "invalid credential path",
		},
		"usage: bad agent name": {
			args: []string{"agent", "add", "Bad Name"},
			code: exitUsage, msg: "invalid agent name",
		},
		"usage: explain without agent": {
			args: []string{"policy", "explain", "GET", "https://api.openai.com/"},
			code: exitUsage, msg: "--agent",
		},
		"usage: bad shell": {
			args: []string{"env", "--shell", "tcsh"},
			code: exitUsage, msg: "--shell",
		},
		"usage: run without command": {
			args: []string{"run", "--"},
			code: exitUsage, msg: "missing argument",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if !tc.noInit {
				e.ok("", "init")
				e.ok("the-value\n", "vault", "set", "a/b")
			}
			if tc.setup != nil {
				tc.setup(e)
			}
			before, _ := os.ReadFile(e.vaultPath())
			var r result
			if tc.stdin == "" {
				devnull, err := os.Open(os.DevNull)
				must(t, err)
				defer devnull.Close()
				r = e.runWith(devnull, tc.args...)
			} else {
				r = e.run(tc.stdin, tc.args...)
			}
			wantError(t, r, tc.code, tc.msg)
			if tc.unchanged {
				after, _ := os.ReadFile(e.vaultPath())
				if !bytes.Equal(before, after) {
					t.Errorf("vault file changed")
				}
			}
		})
	}
}

// badPolicy has two positioned problems: a missing host (3:5) and an
// unknown key (4:5).
const badPolicy = "version: 1\nrules:\n  - name: x\n    hots: a.example\n"

// TestMalformedEnvImportsNothing: the good lines before a bad one are not
// half-imported.
func TestMalformedEnvImportsNothing(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	r := e.run("", "vault", "import-env", filepath.Join("testdata", "env", "malformed.env"))
	wantError(t, r, exitFailure, "nothing imported")
	list := e.ok("", "vault", "list")
	if strings.Contains(list.stdout, "env/") {
		t.Fatalf("something was imported:\n%s", list)
	}
}

func flipByte(t *testing.T, path string, at float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	i := int(at * float64(len(b)-1))
	b[i] ^= 0x01
	writeFile(t, path, string(b))
}

func truncate(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	writeFile(t, path, string(b[:len(b)/2]))
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
