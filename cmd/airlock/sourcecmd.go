package main

// `airlock source add|list|rm`, `airlock vault set-ref` and the doctor
// check of credential sources. The command table is not edited here: each
// command is a parse function (a flag-set builder plus positional
// arguments) and a run function taking the parsed options, the open vault
// and its I/O, so the table can register them as it likes.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

// Usage lines of the source commands.
const (
	usageSourceAdd   = "airlock source add helvetisafe|vault-kv|exec|file NAME [FLAGS] [-- ARGV...]  (secrets on stdin, one per line)"
	usageSourceList  = "airlock source list [--json]"
	usageSourceRm    = "airlock source rm NAME [--force]"
	usageVaultSetRef = "airlock vault set-ref PATH --source NAME --key KEY [--field F] [--version N] [--ttl D] [--username U] [--replace]"
)

// sourceIO is where a source command reads secrets and writes output.
// Prompt, when set (stdin is a terminal), asks for one secret without echo.
type sourceIO struct {
	In       io.Reader
	Prompt   func(what string) ([]byte, error)
	Out, Err io.Writer
}

// sourceAddOptions are the parsed options of `source add`.
type sourceAddOptions struct {
	Type, Name string
	Config     map[string]string // settings stored in the definition
	Secrets    []string          // secret names read from stdin, in this order
	Files      map[string]string // secret name -> file to read it from (rsa_key_pem)
	Replace    bool
}

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(s string) error { *r = append(*r, s); return nil }

// parseSourceAdd parses `source add TYPE NAME [FLAGS] [-- ARGV...]`.
func parseSourceAdd(args []string) (*sourceAddOptions, error) {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		return nil, withHint(usageError("source add needs a type and a name"), "usage: "+usageSourceAdd)
	}
	o := &sourceAddOptions{Type: args[0], Name: args[1], Config: map[string]string{}, Files: map[string]string{}}
	if !slices.Contains(source.Types, o.Type) {
		return nil, withHint(usageErrorf("unknown source type %q", o.Type), "use one of: "+strings.Join(source.Types, ", "))
	}
	if err := checkSourceName(o.Name); err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("source add "+o.Type, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	str := map[string]*string{}
	def := func(name, cfgKey, help string) { str[cfgKey] = fs.String(name, "", help) }
	def("ttl", "ttl", "cache TTL, e.g. 5m (default 5m)")
	def("refresh-ahead", "refresh_ahead", "refresh this long before the TTL ends (default TTL/5)")
	def("stale-for", "stale_for", "after a failed refresh serve the cached value this long (default 0: fail closed)")
	def("fetch-timeout", "fetch_timeout", "bound on one fetch (default 30s)")
	fs.BoolVar(&o.Replace, "replace", false, "replace an existing source of that name")
	var caFile, keyFile string
	var assume, env, setenv repeated
	firstLine := fs.Bool("first-line", false, "keep only the first line of the value")
	switch o.Type {
	case source.TypeHelvetiSafe:
		def("base-url", "base_url", "HelvetiSafe base URL, https://...")
		def("auth", "auth", "oauth2 (client credentials, secret on stdin) or token (portal API token on stdin)")
		def("client-id", "client_id", "OAuth2 client ID")
		def("scopes", "scopes", "OAuth2 scopes, space-separated")
		def("key-mode", "key_mode", "pem (--rsa-key-file) or password (account password on stdin)")
		def("timeout", "timeout", "HTTP timeout (default 15s)")
		fs.StringVar(&keyFile, "rsa-key-file", "", "RSA private key PEM, copied into the vault")
		fs.StringVar(&caFile, "ca-file", "", "CA bundle PEM for a private CA")
		fs.Var(&assume, "assume", "override a protocol assumption NAME=VALUE (README: HelvetiSafe assumptions)")
	case source.TypeVaultKV:
		def("address", "address", "Vault / OpenBao address, https://host:8200")
		def("mount", "mount", "KV v2 mount (default secret)")
		def("namespace", "namespace", "X-Vault-Namespace")
		def("auth", "auth", "token (token on stdin) or approle (secret ID on stdin)")
		def("role-id", "role_id", "AppRole role ID")
		def("approle-mount", "approle_mount", "AppRole auth mount (default approle)")
		def("timeout", "timeout", "HTTP timeout (default 15s)")
		fs.StringVar(&caFile, "ca-file", "", "CA bundle PEM for a private CA")
	case source.TypeExec:
		def("timeout", "timeout", "command timeout (default 10s)")
		fs.Var(&env, "env", "pass this variable from airlock's environment (repeatable; PATH and HOME always are)")
		fs.Var(&setenv, "setenv", "set NAME=VALUE for the command (repeatable; not for secrets)")
	case source.TypeFile:
		def("dir", "dir", "directory of secret files (key = file name)")
	}
	rest, argv := splitArgv(args[2:])
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelpShown
		}
		return nil, withHint(usageError(err.Error()), "usage: "+usageSourceAdd)
	}
	if fs.NArg() > 0 {
		return nil, withHint(usageErrorf("unexpected argument %q", fs.Arg(0)), "put the command after --: airlock source add exec NAME -- pass show {key}")
	}
	for k, p := range str {
		if *p != "" {
			o.Config[k] = *p
		}
	}
	if *firstLine {
		o.Config["first_line"] = "true"
	}
	for _, a := range assume {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, withHint(usageErrorf("--assume %q: want NAME=VALUE", a), "see the README table of HelvetiSafe assumptions")
		}
		o.Config["assume."+k] = v
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, withHint(fmt.Errorf("--ca-file: %w", err), "give a readable PEM file")
		}
		o.Config["ca_pem"] = string(b)
	}
	return o, o.finish(keyFile, argv, env, setenv)
}

// finish fills the type-specific defaults and the secrets to read.
func (o *sourceAddOptions) finish(keyFile string, argv, env, setenv []string) error {
	c := o.Config
	switch o.Type {
	case source.TypeHelvetiSafe:
		if c["auth"] == "" {
			c["auth"] = map[bool]string{true: source.HSAuthOAuth2, false: source.HSAuthToken}[c["client_id"] != ""]
		}
		if c["key_mode"] == "" {
			c["key_mode"] = map[bool]string{true: source.HSKeyPEM, false: source.HSKeyPass}[keyFile != ""]
		}
		o.Secrets = []string{map[bool]string{true: "client_secret", false: "api_token"}[c["auth"] == source.HSAuthOAuth2]}
		if c["key_mode"] == source.HSKeyPass {
			o.Secrets = append(o.Secrets, "password")
		} else if keyFile == "" {
			return withHint(usageError("key mode pem needs --rsa-key-file"), "or use --key-mode password and give the account password on stdin")
		} else {
			o.Files["rsa_key_pem"] = keyFile
		}
	case source.TypeVaultKV:
		if c["auth"] == "" {
			c["auth"] = map[bool]string{true: source.KVAuthAppRole, false: source.KVAuthToken}[c["role_id"] != ""]
		}
		o.Secrets = []string{map[bool]string{true: "secret_id", false: "token"}[c["auth"] == source.KVAuthAppRole]}
	case source.TypeExec:
		if len(argv) == 0 {
			return withHint(usageError("source add exec needs a command"), "e.g. airlock source add exec pass -- pass show {key}")
		}
		b, _ := json.Marshal(argv)
		c["argv"] = string(b)
		if len(env) > 0 {
			c["env"] = strings.Join(env, ",")
		}
		if len(setenv) > 0 {
			b, _ := json.Marshal(setenv)
			c["setenv"] = string(b)
		}
	}
	return nil
}

// splitArgv splits args at the first "--".
func splitArgv(args []string) (flags, argv []string) {
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i], args[i+1:]
	}
	return args, nil
}

func checkSourceName(name string) error {
	ok := name != "" && len(name) <= 64 && name != "vault"
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}
	if !ok {
		return withHint(usageErrorf("invalid source name %q", name), "use up to 64 letters, digits, '-', '_', '.' (not \"vault\")")
	}
	return nil
}

// readSourceSecrets reads each named secret: a prompt on a terminal, else
// one line of stdin each (a trailing \r\n or \n stripped).
func readSourceSecrets(sio sourceIO, names []string) (map[string]vault.Secret, error) {
	out := map[string]vault.Secret{}
	var br *bufio.Reader
	for _, name := range names {
		var b []byte
		var err error
		if sio.Prompt != nil {
			b, err = sio.Prompt(strings.ReplaceAll(name, "_", " ") + ": ")
		} else {
			if br == nil {
				br = bufio.NewReader(io.LimitReader(sio.In, 1<<20))
			}
			var line string
			line, err = br.ReadString('\n')
			if errors.Is(err, io.EOF) && line != "" {
				err = nil
			}
			b = []byte(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if len(b) == 0 {
			return nil, withHint(fmt.Errorf("no %s on stdin", name),
				"pipe the secrets one per line, in this order: "+strings.Join(names, ", "))
		}
		out[name] = vault.NewSecret(b)
	}
	return out, nil
}

// runSourceAdd reads the secrets, checks the definition builds, and stores
// it in the vault.
func runSourceAdd(v *vault.Vault, o *sourceAddOptions, sio sourceIO) error {
	secrets, err := readSourceSecrets(sio, o.Secrets)
	if err != nil {
		return err
	}
	for name, path := range o.Files {
		b, err := os.ReadFile(path)
		if err != nil {
			return withHint(fmt.Errorf("read %s: %w", name, err), "give a readable file; its content is copied into the vault")
		}
		secrets[name] = vault.NewSecret(b)
	}
	now := time.Now().UTC()
	def := &vault.SourceDef{Name: o.Name, Type: o.Type, Config: o.Config, Secrets: secrets, CreatedAt: now, UpdatedAt: now}
	src, _, err := source.Build(def)
	if err != nil {
		return withHint(err, "fix the flags; `airlock source add "+o.Type+" -h` lists them")
	}
	if c, ok := src.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	replaced := false
	err = v.Update(func(d *vault.Data) error {
		if old, err := d.Source(o.Name); err == nil {
			if !o.Replace {
				return withHint(fmt.Errorf("source %q exists", o.Name), "add --replace to overwrite it, or `airlock source rm "+o.Name+"` first")
			}
			def.CreatedAt, replaced = old.CreatedAt, true
		}
		d.SetSource(def)
		return nil
	})
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "replaced", false: "added"}[replaced]
	fmt.Fprintf(sio.Err, "airlock: %s source %s (%s); `airlock doctor` checks that it answers\n", verb, o.Name, o.Type)
	return nil
}

// sourceListEntry is one `source list --json` entry: never a secret.
type sourceListEntry struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Config    map[string]string `json:"config"`
	Secrets   []string          `json:"secrets"` // names only
	LastFetch *time.Time        `json:"last_fetch"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// runSourceList prints the sources: settings, secret names, last fetch
// (from the status file `serve` writes; statusPath may not exist).
func runSourceList(d *vault.Data, statusPath string, asJSON bool, out io.Writer) error {
	st, err := source.ReadStatus(statusPath)
	if err != nil {
		return withHint(err, "delete "+statusPath+"; `airlock serve` writes it again")
	}
	entries := make([]sourceListEntry, 0, len(d.Sources))
	for _, name := range d.SourceNames() {
		s := d.Sources[name]
		e := sourceListEntry{Name: name, Type: s.Type, Config: maps.Clone(s.Config), Secrets: slices.Sorted(maps.Keys(s.Secrets)),
			UpdatedAt: s.UpdatedAt.UTC()}
		if e.Config == nil {
			e.Config = map[string]string{}
		}
		if _, ok := e.Config["ca_pem"]; ok {
			e.Config["ca_pem"] = "(set)"
		}
		if e.Secrets == nil {
			e.Secrets = []string{}
		}
		for _, ks := range st.Sources[name] {
			if t := ks.LastFetch.UTC(); e.LastFetch == nil || t.After(*e.LastFetch) {
				e.LastFetch = &t
			}
		}
		entries = append(entries, e)
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tADDRESS\tAUTH\tSECRETS\tLAST FETCH")
	for _, e := range entries {
		addr := firstNonEmpty(e.Config["base_url"], e.Config["address"], e.Config["argv"], e.Config["dir"])
		last := "never"
		if e.LastFetch != nil {
			last = e.LastFetch.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Type, addr, firstNonEmpty(e.Config["auth"], "-"),
			firstNonEmpty(strings.Join(e.Secrets, ","), "-"), last)
	}
	return tw.Flush()
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// runSourceRm deletes a source; credentials that refer to it block the
// removal unless force.
func runSourceRm(v *vault.Vault, name string, force bool, errOut io.Writer) error {
	err := v.Update(func(d *vault.Data) error {
		if _, err := d.Source(name); err != nil {
			return withHint(err, "`airlock source list` shows the sources")
		}
		var users []string
		for _, p := range d.CredentialPaths() {
			if r, ok := d.Credentials[p].Ref(); ok && r.Source == name {
				users = append(users, p)
			}
		}
		if len(users) > 0 && !force {
			return withHint(fmt.Errorf("source %q is used by %s", name, strings.Join(users, ", ")),
				"remove or re-point those credentials first, or add --force (they then answer CREDENTIAL_SOURCE_UNAVAILABLE)")
		}
		return d.DeleteSource(name)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "airlock: removed source %s\n", name)
	return nil
}

// setRefOptions are the parsed options of `vault set-ref`.
type setRefOptions struct {
	Path     string
	Ref      vault.Ref
	Username string
	Replace  bool
}

// parseSetRef parses `vault set-ref PATH --source NAME --key KEY ...`.
func parseSetRef(args []string) (*setRefOptions, error) {
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		return nil, withHint(usageError("vault set-ref needs a credential path"), "usage: "+usageVaultSetRef)
	}
	o := &setRefOptions{Path: args[0]}
	if err := checkCredPath(o.Path); err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("vault set-ref", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Ref.Source, "source", "", "source name (airlock source list)")
	fs.StringVar(&o.Ref.Key, "key", "", "the secret's name in the source")
	fs.StringVar(&o.Ref.Field, "field", "", "one field of a structured secret (KV data field, JSON field)")
	fs.IntVar(&o.Ref.Version, "version", 0, "pin a version (vault-kv)")
	fs.DurationVar(&o.Ref.TTL, "ttl", 0, "cache TTL for this credential (default: the source's)")
	fs.StringVar(&o.Username, "username", "", "user name (basic auth)")
	fs.BoolVar(&o.Replace, "replace", false, "replace a stored (non-reference) credential at PATH")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelpShown
		}
		return nil, withHint(usageError(err.Error()), "usage: "+usageVaultSetRef)
	}
	switch {
	case fs.NArg() > 0:
		return nil, withHint(usageErrorf("unexpected argument %q", fs.Arg(0)), "usage: "+usageVaultSetRef)
	case o.Ref.Source == "" || o.Ref.Key == "":
		return nil, withHint(usageError("--source and --key are required"), "usage: "+usageVaultSetRef)
	case strings.Contains(o.Ref.Field, "#") || o.Ref.Version < 0 || o.Ref.TTL < 0:
		return nil, withHint(usageError("--field must not contain '#'; --version and --ttl must not be negative"), "usage: "+usageVaultSetRef)
	}
	return o, nil
}

// runSetRef stores a reference credential: no value, a source and a key.
func runSetRef(v *vault.Vault, o *setRefOptions, errOut io.Writer) error {
	err := v.Update(func(d *vault.Data) error {
		if _, err := d.Source(o.Ref.Source); err != nil {
			return withHint(err, "add it first: airlock source add TYPE "+o.Ref.Source+" ...")
		}
		now := time.Now().UTC()
		c := vault.NewRefCredential(o.Path, o.Ref)
		c.CreatedAt, c.UpdatedAt, c.Username = now, now, o.Username
		if old, ok := d.Credentials[o.Path]; ok && old != nil {
			if old.Kind != vault.KindRef && !o.Replace {
				return withHint(fmt.Errorf("%s holds a stored value", o.Path), "add --replace to turn it into a reference (the stored value is deleted)")
			}
			c.CreatedAt = old.CreatedAt
		}
		d.SetCredential(c)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "airlock: %s now refers to %s:%s\n", o.Path, o.Ref.Source, source.SourceKey(o.Ref))
	return nil
}

// refColumn is the `vault list` SOURCE column of c: "-" for a stored
// value, else "SOURCE:KEY (fetched TIME RESULT)" or "(never fetched)".
func refColumn(c *vault.Credential, st source.StatusFile) string {
	info, ok := source.DescribeRef(c, st)
	if !ok {
		return "-"
	}
	return info.String()
}

// refJSON is the `vault list --json` "source" member of c (nil for a
// stored value).
func refJSON(c *vault.Credential, st source.StatusFile) *source.RefInfo {
	info, ok := source.DescribeRef(c, st)
	if !ok {
		return nil
	}
	return &info
}

// sourceCheck is one doctor line for a source.
type sourceCheck struct {
	Name, Status, Detail, Fix string // Status: statusOK or statusBroken
}

// checkSources builds every source of d and asks it to answer (token and
// org key for HelvetiSafe, login / lookup-self for Vault, the command in
// PATH for exec, the directory for file). Never prints a secret.
func checkSources(ctx context.Context, d *vault.Data) []sourceCheck {
	var out []sourceCheck
	for _, name := range d.SourceNames() {
		def := d.Sources[name]
		chk := sourceCheck{Name: "source " + name, Status: statusOK, Detail: def.Type + " answers"}
		src, _, err := source.Build(def)
		if err == nil {
			err = source.CheckSource(ctx, src)
			if c, ok := src.(interface{ Close() error }); ok {
				_ = c.Close()
			}
		}
		if err != nil {
			chk.Status, chk.Detail, chk.Fix = statusBroken, err.Error(), sourceFix(name, def.Type, err)
		}
		out = append(out, chk)
	}
	return out
}

func sourceFix(name, typ string, err error) string {
	switch {
	case errors.Is(err, source.ErrAuth):
		return "airlock's credentials for " + name + " were refused: `airlock source add " + typ + " " + name + " --replace ...` with new ones"
	case errors.Is(err, source.ErrUnavailable):
		return "check that " + name + " is reachable from here (address, CA, network), or the command / directory exists"
	}
	return "fix the definition: `airlock source add " + typ + " " + name + " --replace ...`"
}
