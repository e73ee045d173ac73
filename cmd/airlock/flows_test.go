package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	must(t, err)
	return prefix + hex.EncodeToString(b)
}

// TestSecretNeverPrinted runs every command but `vault get` and checks the
// secret value is absent from its output and from the raw vault file.
func TestSecretNeverPrinted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.standInProxy(t)
	secret := randomSecret(t, "sk-set-")
	envSecret := randomSecret(t, "sk-env-")
	envFile := filepath.Join(t.TempDir(), "app.env")
	writeFile(t, envFile, "export API_TOKEN=\""+envSecret+"\"\n")
	steps := [][]string{
		{"init"},
		{"vault", "set", "openai/api-key", "--username", "u", "--meta", "k=v", "--expires", "30d"},
		{"vault", "import-env", envFile},
		{"vault", "list"},
		{"vault", "list", "--json"},
		{"vault", "set", "openai/api-key"},
		{"agent", "add", "bot"},
		{"agent", "list"},
		{"agent", "list", "--json"},
		{"env"},
		{"env", "--shell", "fish"},
		{"policy", "check"},
		{"ca", "export"},
		{"run", "--", "env"},
		{"agent", "rotate", "bot"},
		{"vault", "passwd"},
		{"vault", "rm", "--yes", "env/API_TOKEN"},
	}
	e.env["AIRLOCK_NEW_PASSPHRASE"] = testPassphrase + "2"
	var all strings.Builder
	for _, args := range steps {
		r := e.run(secret+"\n", args...)
		if args[0] == "vault" && args[1] == "passwd" {
			e.env["AIRLOCK_PASSPHRASE"] = testPassphrase + "2"
		}
		if r.code != 0 {
			t.Fatalf("want exit 0\n%s", r)
		}
		all.WriteString(r.stdout + r.stderr)
	}
	for _, s := range []string{secret, envSecret} {
		if strings.Contains(all.String(), s) {
			t.Errorf("a secret appeared in command output")
		}
		raw, err := os.ReadFile(e.vaultPath())
		must(t, err)
		if strings.Contains(string(raw), s) || strings.Contains(string(raw), hex.EncodeToString([]byte(s))) {
			t.Errorf("a secret appears in the raw vault file")
		}
	}
	if r := e.ok("", "vault", "get", "openai/api-key"); r.stdout != secret+"\n" {
		t.Errorf("vault get printed %d bytes, want the secret and a newline", len(r.stdout))
	}
}

func TestVaultSetGetRoundTrip(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	cases := map[string]struct{ stdin, want string }{
		"newline stripped":      {"abc\n", "abc"},
		"crlf stripped":         {"abc\r\n", "abc"},
		"only one newline":      {"abc\n\n", "abc\n"},
		"no newline":            {"abc", "abc"},
		"inner spaces kept":     {" a b \n", " a b "},
		"binary-ish bytes kept": {"a\tb\x01c", "a\tb\x01c"},
	}
	i := 0
	for name, tc := range cases {
		i++
		path := fmt.Sprintf("case/%d", i)
		e.ok(tc.stdin, "vault", "set", path)
		if got := e.ok("", "vault", "get", path).stdout; got != tc.want+"\n" {
			t.Errorf("%s: got %q, want %q", name, got, tc.want+"\n")
		}
	}
}

func TestVaultListJSON(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("v1", "vault", "set", "svc/one", "--expires", "30d", "--username", "alice", "--meta", "team=ml", "--meta=env=prod")
	e.ok("v2", "vault", "set", "svc/two")
	r := e.ok("", "vault", "list", "--json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r)
	}
	if len(got) != 2 || got[0]["path"] != "svc/one" || got[1]["path"] != "svc/two" {
		t.Fatalf("unexpected list: %s", r.stdout)
	}
	one, two := got[0], got[1]
	if one["username"] != "alice" || one["kind"] != "static" {
		t.Errorf("svc/one: %v", one)
	}
	if m, _ := one["metadata"].(map[string]any); m["team"] != "ml" || m["env"] != "prod" {
		t.Errorf("svc/one metadata: %v", one["metadata"])
	}
	exp, err := time.Parse(time.RFC3339, fmt.Sprint(one["expires_at"]))
	if err != nil || exp.Sub(time.Now()) < 29*24*time.Hour || exp.Sub(time.Now()) > 31*24*time.Hour {
		t.Errorf("svc/one expires_at %v", one["expires_at"])
	}
	if v, ok := two["expires_at"]; !ok || v != nil {
		t.Errorf("svc/two expires_at = %v, want null", v)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(one[k])); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	table := e.ok("", "vault", "list").stdout
	if !strings.HasPrefix(table, "PATH") || !strings.Contains(table, "svc/one") {
		t.Errorf("table:\n%s", table)
	}
	// Updating the value keeps the other fields.
	e.ok("v1b", "vault", "set", "svc/one")
	r = e.ok("", "vault", "list", "--json")
	if !strings.Contains(r.stdout, `"alice"`) || !strings.Contains(r.stdout, `"team": "ml"`) {
		t.Errorf("update lost fields: %s", r.stdout)
	}
}

func TestImportEnv(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	r := e.ok("", "vault", "import-env", filepath.Join("testdata", "env", "good.env"))
	if !strings.Contains(r.stderr, "imported 5 credentials") || !strings.Contains(r.stderr, "EMPTY has an empty value") {
		t.Errorf("summary:\n%s", r)
	}
	want := map[string]string{
		"env/OPENAI_API_KEY":    "sk-plain-value",
		"env/ANTHROPIC_API_KEY": `sk-ant "quoted" value`,
		"env/SINGLE":            `literal $HOME \n`,
		"env/SPACED":            "spaced value",
		"env/CRLF":              "windows",
	}
	for path, v := range want {
		if got := e.ok("", "vault", "get", path).stdout; got != v+"\n" {
			t.Errorf("%s = %q, want %q", path, got, v)
		}
	}
}

// TestConcurrentSet: 8 processes set distinct paths at once; none is lost.
func TestConcurrentSet(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	const n = 8
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run(fmt.Sprintf("value-%d", i), "vault", "set", fmt.Sprintf("par/%d", i))
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.code != 0 {
			t.Fatalf("concurrent set failed\n%s", r)
		}
	}
	var got []struct{ Path string }
	must(t, json.Unmarshal([]byte(e.ok("", "vault", "list", "--json").stdout), &got))
	seen := map[string]bool{}
	for _, c := range got {
		seen[c.Path] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("par/%d", i)] {
			t.Errorf("par/%d lost; have %v", i, seen)
		}
	}
}

func TestRmAndPasswd(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("v", "vault", "set", "a/b")
	e.ok("", "vault", "rm", "a/b", "--yes")
	wantError(t, e.run("", "vault", "get", "a/b"), exitFailure, "not found")

	e.env["AIRLOCK_NEW_PASSPHRASE"] = "new passphrase"
	e.ok("", "vault", "passwd")
	wantError(t, e.run("", "vault", "list"), exitFailure, "wrong passphrase")
	pf := filepath.Join(t.TempDir(), "pass")
	writeFile(t, pf, "new passphrase\n")
	delete(e.env, "AIRLOCK_PASSPHRASE")
	e.ok("", "--passphrase-file", pf, "vault", "list")
}

var urlRE = regexp.MustCompile(`^http://bot:([0-9a-f]{64})@127\.0\.0\.1:7600$`)

func TestAgentLifecycle(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	add := e.ok("", "agent", "add", "bot")
	lines := strings.Split(strings.TrimSuffix(add.stdout, "\n"), "\n")
	if len(lines) != 1 || !urlRE.MatchString(lines[0]) {
		t.Fatalf("agent add stdout is not exactly one URL line:\n%s", add)
	}
	url1 := lines[0]
	token1 := urlRE.FindStringSubmatch(url1)[1]
	keyPath := filepath.Join(e.home, "keys", "bot.key")
	fi, err := os.Stat(keyPath)
	must(t, err)
	if fi.Mode().Perm() != 0o600 || fi.Size() != 65 {
		t.Errorf("key file mode %v size %d, want 0600 and 65", fi.Mode().Perm(), fi.Size())
	}
	for _, args := range [][]string{{"env"}, {"env", "--agent", "bot"}} {
		env := e.ok("", args...).stdout
		for _, want := range []string{"export HTTPS_PROXY='" + url1 + "'\n", "export https_proxy='" + url1 + "'\n",
			"export HTTP_PROXY='" + url1 + "'\n", "export NO_PROXY='localhost,127.0.0.1,::1'\n",
			"export SSL_CERT_FILE='" + filepath.Join(e.home, "ca-bundle.pem") + "'\n",
			"export NODE_EXTRA_CA_CERTS='" + filepath.Join(e.home, "ca.pem") + "'\n", "export NODE_USE_ENV_PROXY='1'\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, env)
			}
		}
	}
	addr := e.standInProxy(t)
	if got := e.ok("", "run", "--", "sh", "-c", "echo $HTTPS_PROXY").stdout; got != strings.Replace(url1, "127.0.0.1:7600", addr, 1)+"\n" {
		t.Errorf("run printed %q, want the URL", got)
	}
	delete(e.env, "AIRLOCK_LISTEN") // back to the default address in the URLs below
	if !authenticates(t, e, "bot", token1) {
		t.Errorf("the printed token does not authenticate")
	}
	rot := e.ok("", "agent", "rotate", "bot")
	url2 := strings.TrimSpace(rot.stdout)
	if !urlRE.MatchString(url2) || url2 == url1 {
		t.Fatalf("rotate printed %q", rot.stdout)
	}
	if !strings.Contains(e.ok("", "env").stdout, url2) {
		t.Errorf("env does not follow the rotated key")
	}
	if authenticates(t, e, "bot", token1) || !authenticates(t, e, "bot", urlRE.FindStringSubmatch(url2)[1]) {
		t.Errorf("after rotate the old token must fail and the new one work")
	}
	var agents []map[string]any
	must(t, json.Unmarshal([]byte(e.ok("", "agent", "list", "--json").stdout), &agents))
	if len(agents) != 1 || agents[0]["name"] != "bot" || agents[0]["key_file"] != true || agents[0]["disabled"] != false {
		t.Errorf("agent list: %v", agents)
	}
	e.ok("", "agent", "rm", "bot", "--yes")
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Errorf("key file still there after rm: %v", err)
	}
	if authenticates(t, e, "bot", urlRE.FindStringSubmatch(url2)[1]) {
		t.Errorf("removed agent still authenticates")
	}
}

func authenticates(t *testing.T, e *tenv, name, token string) bool {
	t.Helper()
	v, err := vault.Open(e.vaultPath(), vault.Unlock{Passphrase: []byte(e.env["AIRLOCK_PASSPHRASE"])})
	must(t, err)
	_, ok := v.Snapshot().AuthenticateToken(name, token)
	return ok
}

func TestEnvPicksAgent(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.env["AIRLOCK_LISTEN"] = "127.0.0.1:9999"
	u := strings.TrimSpace(e.ok("", "agent", "add", "one").stdout)
	if !strings.HasSuffix(u, "@127.0.0.1:9999") {
		t.Errorf("AIRLOCK_LISTEN ignored: %s", u)
	}
	e.ok("", "agent", "add", "two")
	wantError(t, e.run("", "env"), exitUsage, "several agents: one, two")
	if !strings.Contains(e.ok("", "env", "--agent", "one").stdout, u) {
		t.Errorf("env --agent one lacks its URL")
	}
	fish := e.ok("", "env", "--agent", "one", "--shell=fish").stdout
	if !strings.Contains(fish, "set -gx HTTPS_PROXY '"+u+"';") {
		t.Errorf("fish output:\n%s", fish)
	}
}

func TestRunExitCode(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("", "agent", "add", "bot")
	e.standInProxy(t)
	cases := map[string]struct {
		args []string
		code int
	}{
		"exit 3":         {[]string{"run", "--", "sh", "-c", "exit 3"}, 3},
		"exit 0":         {[]string{"run", "--agent", "bot", "--", "true"}, 0},
		"without dashes": {[]string{"run", "sh", "-c", "exit 5"}, 5},
		"killed":         {[]string{"run", "--", "sh", "-c", "kill -TERM $$"}, 128 + 15},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if r := e.run("", tc.args...); r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r)
			}
		})
	}
	wantError(t, e.run("", "run", "--", "/nonexistent/cmd"), exitNotFound, "/nonexistent/cmd")
}

func TestInitLayout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("", "init")
	if !strings.Contains(r.stderr, "next steps") || r.stdout != "" {
		t.Errorf("init output:\n%s", r)
	}
	modes := map[string]os.FileMode{
		"": 0o700, "keys": 0o700, "airlock.vault": 0o600,
		"ca.pem": 0o644, "ca-bundle.pem": 0o644, "policy.yaml": 0o644,
	}
	for name, want := range modes {
		fi, err := os.Stat(filepath.Join(e.home, name))
		must(t, err)
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	ca := e.ok("", "ca", "export").stdout
	if !strings.HasPrefix(ca, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("ca export: %q", ca)
	}
	bundle, err := os.ReadFile(filepath.Join(e.home, "ca-bundle.pem"))
	must(t, err)
	if !strings.HasSuffix(string(bundle), ca) {
		t.Errorf("ca-bundle.pem does not end with the CA")
	}
	if v := e.ok("", "version").stdout; v != "airlock "+version+"\n" {
		t.Errorf("version: %q", v)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := map[string]struct {
		args   []string
		code   int
		stdout string // help asked for: once, on stdout
		stderr string // usage error: on stderr
	}{
		"-h":                {args: []string{"-h"}, stdout: "AIRLOCK_INSECURE_FAST_KDF"},
		"--help":            {args: []string{"--help"}, stdout: "commands:"},
		"help":              {args: []string{"help"}, stdout: "airlock vault set|set-oauth2|set-aws|"},
		"help lists flags":  {args: []string{"help", "vault"}, stdout: "airlock vault set PATH [--expires WHEN]"},
		"help vault set":    {args: []string{"help", "vault", "set"}, stdout: "usage: airlock vault set PATH"},
		"help serve":        {args: []string{"help", "serve"}, stdout: "-log-format FORMAT"},
		"serve --help":      {args: []string{"serve", "--help"}, stdout: "-log-format FORMAT"},
		"help vault":        {args: []string{"help", "vault"}, stdout: "airlock vault import-env FILE"},
		"vault -h":          {args: []string{"vault", "-h"}, stdout: "airlock vault import-env FILE"},
		"vault set -h":      {args: []string{"vault", "set", "-h"}, stdout: "-expires"},
		"explain required":  {args: []string{"policy", "explain", "--help"}, stdout: "airlock policy explain METHOD URL --agent NAME"},
		"run synopsis":      {args: []string{"run", "--help"}, stdout: "airlock run [--agent NAME] [--isolate] [--ttl DURATION] -- CMD [ARGS...]"},
		"no command":        {args: nil, code: exitUsage, stderr: "commands:"},
		"group only":        {args: []string{"agent"}, code: exitUsage, stderr: "airlock agent rotate NAME"},
		"bad global flag":   {args: []string{"--nope"}, code: exitUsage, stderr: "airlock: hint: usage: airlock [--home DIR]"},
		"hint has synopsis": {args: []string{"vault", "get"}, code: exitUsage, stderr: "airlock: hint: usage: airlock vault get PATH\n"},
		"help unknown":      {args: []string{"help", "nope"}, code: exitUsage, stderr: "unknown command"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.run("", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("want exit %d, %q on stdout, %q on stderr\n%s", tc.code, tc.stdout, tc.stderr, r)
			}
			if tc.code == 0 && r.stderr != "" {
				t.Errorf("help wrote to stderr\n%s", r)
			}
			if tc.code == 0 && strings.Count(r.stdout, "usage: ") > 1 && !strings.Contains(name, "help") {
				t.Errorf("usage printed more than once\n%s", r)
			}
		})
	}
}

// TestInitFailureLeavesNothing: an init that cannot get a passphrase, or
// fails later, leaves no partial home behind; a short passphrase is
// warned about but accepted.
func TestInitFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		setup    func(e *tenv)
		code     int
		wantHome bool
		stderr   string
	}{
		"no passphrase": {
			setup: func(e *tenv) { delete(e.env, "AIRLOCK_PASSPHRASE") },
			code:  exitFailure, stderr: "no passphrase was given",
		},
		"nested home, no passphrase": {
			setup: func(e *tenv) {
				delete(e.env, "AIRLOCK_PASSPHRASE")
				e.home = filepath.Join(e.home, "a", "b")
				e.env["AIRLOCK_HOME"] = e.home
			},
			code: exitFailure, stderr: "no passphrase was given",
		},
		"unreadable key file": {
			setup: func(e *tenv) { e.env["AIRLOCK_KEY_FILE"] = filepath.Join(e.home+"-nope", "x", "key") },
			code:  exitFailure, stderr: "airlock: error:",
		},
		"short passphrase warns": {
			setup:    func(e *tenv) { e.env["AIRLOCK_PASSPHRASE"] = "short" },
			wantHome: true, stderr: "airlock: warning: the passphrase is shorter than 12 characters",
		},
		"long passphrase, no warning": {wantHome: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			r := e.run("", "init")
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("want exit %d and %q\n%s", tc.code, tc.stderr, r)
			}
			if tc.stderr == "" && strings.Contains(r.stderr, "airlock: warning") {
				t.Errorf("unexpected warning\n%s", r)
			}
			_, err := os.Stat(e.home)
			if tc.wantHome != (err == nil) {
				t.Fatalf("home exists: %v, want %v\n%s", err == nil, tc.wantHome, r)
			}
			if top := filepath.Dir(filepath.Dir(e.home)); strings.Contains(name, "nested") {
				if _, err := os.Stat(top); err == nil {
					t.Fatalf("directory %s created by init was left behind", top)
				}
			}
		})
	}
}
