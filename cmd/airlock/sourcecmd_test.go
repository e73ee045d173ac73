package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

func sourceTestVault(t *testing.T) *vault.Vault {
	t.Helper()
	v, err := vault.Create(filepath.Join(t.TempDir(), "airlock.vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tableLeaf finds the leaf at path ("source", "add", "file") in the
// command table.
func tableLeaf(t *testing.T, path ...string) *command {
	t.Helper()
	table, c := commands, (*command)(nil)
	for _, name := range path {
		if c = lookup(table, name); c == nil {
			t.Fatalf("no command %q in the table", strings.Join(path, " "))
		}
		table = c.sub
	}
	return c
}

// parseSourceAdd parses `source add TYPE ARGS...` as the table does,
// without running it.
func parseSourceAdd(t *testing.T, args ...string) (*sourceAddOptions, error) {
	t.Helper()
	c := tableLeaf(t, "source", "add", args[0])
	fs := newFlagSet("airlock source add " + args[0])
	f := declareSourceAdd(args[0], fs)
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	if err := c.checkArgs(fs.Args()); err != nil {
		return nil, err
	}
	return f.options(fs.Args())
}

// parseSetRef parses `vault set-ref PATH FLAGS...` as the table does.
func parseSetRef(t *testing.T, args ...string) (*setRefOptions, error) {
	t.Helper()
	fs := newFlagSet("airlock vault set-ref")
	o := declareSetRef(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := tableLeaf(t, "vault", "set-ref").checkArgs(fs.Args()); err != nil {
		return nil, err
	}
	o.Path = fs.Args()[0]
	return o, o.check()
}

func grepForms(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, f := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)),
			hex.EncodeToString([]byte(s)), url.QueryEscape(s)} {
			if strings.Contains(text, f) {
				t.Fatalf("%s leaks a secret (form %q)", what, f)
			}
		}
	}
}

// TestSourceCommands: add one source of each type with its secrets on
// stdin, list them (text and JSON), point a credential at one, refuse to
// remove a source in use, run the doctor check; no secret in any output.
func TestSourceCommands(t *testing.T) {
	v := sourceTestVault(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gh"), []byte("ghp_file_value_123"), 0o600); err != nil {
		t.Fatal(err)
	}
	const hsSecret, hsPassword, kvSecretID = "hs-client-secret-CLI-1", "hs-account-password-CLI-2", "kv-secret-id-CLI-3"
	pemBytes, err := os.ReadFile("testdata/source-test-rsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	var errOut, out bytes.Buffer
	cases := []struct {
		args  []string
		stdin string
	}{
		{[]string{"helvetisafe", "hs", "--base-url", "https://hs.invalid", "--client-id", "airlock", "--key-mode", "password", "--stale-for", "1m"},
			hsSecret + "\n" + hsPassword + "\n"},
		{[]string{"helvetisafe", "hs-pem", "--base-url", "https://hs.invalid", "--rsa-key-file", "testdata/source-test-rsa.pem",
			"--assume", "oaep_hash=sha1"}, "hs-portal-token-CLI-4\n"},
		{[]string{"vault-kv", "kv", "--address", "https://127.0.0.1:1", "--role-id", "r1", "--ttl", "2m"}, kvSecretID},
		{[]string{"exec", "pass", "--env", "GNUPGHOME", "--first-line", "--", "pass", "show", "{key}"}, ""},
		{[]string{"file", "files", "--dir", dir}, ""},
	}
	for _, tc := range cases {
		o, err := parseSourceAdd(t, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if err := runSourceAdd(v, o, sourceIO{In: strings.NewReader(tc.stdin), Out: &out, Err: &errOut}); err != nil {
			t.Fatalf("%v: %v (hint: %s)", tc.args, err, hintOf(err))
		}
	}
	d := v.Snapshot()
	hs, _ := d.Source("hs")
	if hs.Config["auth"] != "oauth2" || !hs.Secrets["client_secret"].Equal([]byte(hsSecret)) || !hs.Secrets["password"].Equal([]byte(hsPassword)) {
		t.Fatalf("hs stored as %+v", hs.Config)
	}
	if p, _ := d.Source("hs-pem"); !p.Secrets["rsa_key_pem"].Equal(pemBytes) || p.Config["assume.oaep_hash"] != "sha1" {
		t.Fatal("hs-pem: key file or assumption not stored")
	}
	if e, _ := d.Source("pass"); e.Config["argv"] != `["pass","show","{key}"]` {
		t.Fatalf("exec argv stored as %q", e.Config["argv"])
	}
	// Adding again without --replace is refused; a secret missing on stdin is refused.
	o, _ := parseSourceAdd(t, "file", "files", "--dir", dir)
	if err := runSourceAdd(v, o, sourceIO{In: strings.NewReader(""), Out: &out, Err: &errOut}); err == nil || !strings.Contains(hintOf(err), "--replace") {
		t.Fatalf("duplicate: %v", err)
	}
	o, _ = parseSourceAdd(t, "vault-kv", "kv2", "--address", "https://x.invalid")
	if err := runSourceAdd(v, o, sourceIO{In: strings.NewReader(""), Out: &out, Err: &errOut}); err == nil || !strings.Contains(err.Error(), "no token on stdin") {
		t.Fatalf("missing secret: %v", err)
	}

	ro, err := parseSetRef(t, "github/token", "--source", "files", "--key", "gh", "--ttl", "30s")
	if err != nil {
		t.Fatal(err)
	}
	if err := runSetRef(v, ro, &errOut); err != nil {
		t.Fatal(err)
	}
	if ro, _ := parseSetRef(t, "x/y", "--source", "nope", "--key", "k"); runSetRef(v, ro, &errOut) == nil {
		t.Fatal("set-ref to an undefined source")
	}
	if err := runSourceRm(v, "files", false, &errOut); err == nil || !strings.Contains(err.Error(), "github/token") {
		t.Fatalf("rm of a source in use: %v", err)
	}
	d = v.Snapshot()
	if r, ok := d.Credentials["github/token"].Ref(); !ok || r.Source != "files" || r.Key != "gh" {
		t.Fatalf("ref = %+v", r)
	}
	if got := refColumn(d.Credentials["github/token"], source.StatusFile{}); got != "files:gh (never fetched)" {
		t.Fatalf("vault list column: %q", got)
	}

	if err := runSourceList(d, filepath.Join(t.TempDir(), "none.json"), false, &out); err != nil {
		t.Fatal(err)
	}
	if err := runSourceList(d, filepath.Join(t.TempDir(), "none.json"), true, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hs-pem", "https://hs.invalid", "client_secret,password", "never", `"rsa_key_pem"`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("list lacks %q:\n%s", want, out.String())
		}
	}
	var doctor strings.Builder
	for _, c := range checkSources(context.Background(), d) {
		doctor.WriteString(c.Name + " " + c.Status + " " + c.Detail + " " + c.Fix + "\n")
		if c.Name == "source files" && c.Status != statusOK || c.Name == "source kv" && c.Status != statusBroken {
			t.Fatalf("doctor: %+v", c)
		}
	}
	all := out.String() + errOut.String() + doctor.String()
	grepForms(t, "list, messages and doctor", all, hsSecret, hsPassword, kvSecretID, "hs-portal-token-CLI-4", "ghp_file_value_123")
	for _, l := range strings.Split(string(pemBytes), "\n") {
		if len(l) > 40 && strings.Contains(all, l) {
			t.Fatal("RSA key PEM in the output")
		}
	}
}

// TestSourceAddBadInput: clear usage errors (exit 2) with hints, before
// the vault is opened (the home here has none), and no secret is ever
// taken from argv.
func TestSourceAddBadInput(t *testing.T) {
	cases := map[string][]string{
		"no name":          {"helvetisafe"},
		"bad type":         {"ldap", "x"},
		"bad name":         {"file", "a/b", "--dir", "."},
		"exec no argv":     {"exec", "e"},
		"exec no dashes":   {"exec", "e", "pass", "show"},
		"exec no name":     {"exec", "--", "pass", "show"},
		"pem no key file":  {"helvetisafe", "h", "--base-url", "https://x", "--key-mode", "pem"},
		"secret flag":      {"vault-kv", "k", "--address", "https://x", "--token", "hvs.in-argv"},
		"bad assume":       {"helvetisafe", "h", "--base-url", "https://x", "--assume", "oaep_hash"},
		"stray positional": {"file", "f", "--dir", ".", "extra"},
	}
	saved, savedErr := Stdout, Stderr
	t.Cleanup(func() { Stdout, Stderr = saved, savedErr })
	home := t.TempDir()
	t.Setenv("AIRLOCK_HOME", home)
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			Stdout, Stderr = &out, &errb
			code := runCLI(append([]string{"source", "add"}, args...))
			if code != exitUsage || !strings.Contains(errb.String(), "airlock: error: ") || !strings.Contains(errb.String(), "airlock: hint: ") {
				t.Fatalf("exit %d, stderr %q; want exit 2 with an error and a hint", code, errb.String())
			}
			if strings.Contains(errb.String(), home) { // the missing vault's error names it
				t.Fatalf("the vault was opened before the arguments were checked: %q", errb.String())
			}
		})
	}
}

// TestSourceCLI runs the built binary: sources added with their secrets on
// stdin, a reference credential, `vault list` with its SOURCE column and
// JSON member, `source list`, the doctor's source checks and `source rm`;
// no secret in any output.
func TestSourceCLI(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	dir := t.TempDir()
	const fileValue, kvToken = "ghp_file_value_CLI_9", "hvs.kv-token-CLI-8"
	writeFile(t, filepath.Join(dir, "gh"), fileValue)
	var all strings.Builder
	keep := func(r result) result { all.WriteString(r.stdout + r.stderr); return r }
	keep(e.ok("", "source", "add", "file", "files", "--dir", dir, "--ttl", "1m"))
	keep(e.ok(kvToken+"\n", "source", "add", "vault-kv", "kv", "--address", "https://127.0.0.1:1"))
	keep(e.ok("", "source", "add", "exec", "echoer", "--first-line", "--", "echo", "{key}"))
	wantError(t, keep(e.run("", "source", "add", "file", "files", "--dir", dir)), exitFailure, `source "files" exists`)
	keep(e.ok("", "vault", "set-ref", "github/token", "--source", "files", "--key", "gh"))
	keep(e.ok("sk-stored-value-CLI-7", "vault", "set", "openai/api-key"))
	wantError(t, keep(e.run("", "vault", "set-ref", "x/y", "--key", "k")), exitUsage, "--source and --key are required")

	r := keep(e.ok("", "vault", "list"))
	if !regexp.MustCompile(`(?m)^PATH\s+KIND\s+CREATED\s+UPDATED\s+EXPIRES\s+SOURCE$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^github/token\s.*files:gh \(never fetched\)$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^openai/api-key\s.*\s-$`).MatchString(r.stdout) {
		t.Errorf("vault list:\n%s", r)
	}
	var creds []credJSON
	must(t, json.Unmarshal([]byte(keep(e.ok("", "vault", "list", "--json")).stdout), &creds))
	for _, c := range creds {
		switch {
		case c.Path == "github/token" && (c.Source == nil || c.Source.Source != "files" || c.Source.Key != "gh" || c.Source.LastFetch != nil):
			t.Errorf("github/token source member: %+v", c.Source)
		case c.Path == "openai/api-key" && c.Source != nil:
			t.Errorf("stored value has a source member: %+v", c.Source)
		}
	}
	r = keep(e.ok("", "source", "list"))
	for _, want := range []string{"NAME", "files", "file", dir, "echoer", "kv", "https://127.0.0.1:1", "token", "never"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("source list lacks %q\n%s", want, r)
		}
	}
	r = keep(e.run("", "doctor"))
	for _, re := range []string{`✓ source files: file answers`, `✓ source echoer: exec answers`, `✗ source kv: `} {
		if !strings.Contains(r.stdout, re) {
			t.Errorf("doctor lacks %q\n%s", re, r)
		}
	}
	wantError(t, keep(e.run("", "source", "rm", "files")), exitFailure, "used by github/token")
	keep(e.ok("", "source", "rm", "files", "--force"))
	if r := keep(e.ok("", "source", "list", "--json")); strings.Contains(r.stdout, `"files"`) {
		t.Errorf("files still listed after rm --force\n%s", r)
	}
	grepForms(t, "CLI output", all.String(), fileValue, kvToken, "sk-stored-value-CLI-7")
}
