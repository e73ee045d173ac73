package main

// `airlock source add|list|rm`, `airlock vault set-ref` and the doctor
// check of credential sources. `source add` is a group with one leaf per
// source type, so each type's flags are its own (and its help lists them).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

// Source types, as the command table names its `source add` leaves.
const (
	sourceTypeHelvetiSafe = source.TypeHelvetiSafe
	sourceTypeVaultKV     = source.TypeVaultKV
	sourceTypeExec        = source.TypeExec
	sourceTypeFile        = source.TypeFile
)

// sourceStatusPath is the file `serve` writes the sources' fetch status to.
func sourceStatusPath(h home) string { return filepath.Join(h.Dir(), "sources.status.json") }

// sourceIO is where a source command reads secrets and writes output.
// Prompt, when set (stdin is a terminal), asks for one secret without echo.
type sourceIO struct {
	In       io.Reader
	Prompt   func(what string) ([]byte, error)
	Out, Err io.Writer
}

// cliSourceIO is the process's streams; a terminal on stdin is prompted.
func cliSourceIO() sourceIO {
	sio := sourceIO{In: Stdin, Out: Stdout, Err: Stderr}
	if isTerminal(Stdin) {
		sio.Prompt = readHidden
	}
	return sio
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

// sourceAddFlags are the flags of `source add TYPE`, declared on its flag
// set; options turns them and the positional arguments into options.
type sourceAddFlags struct {
	typ                 string
	fs                  *flagSet
	str                 map[string]*string // config key -> flag value
	replace, firstLine  *bool
	caFile, keyFile     string
	assume, env, setenv repeated
}

// sourceAddCmd is the setup of `airlock source add TYPE NAME`.
func sourceAddCmd(typ string) func(g *globals, fs *flagSet) runFunc {
	return func(g *globals, fs *flagSet) runFunc {
		f := declareSourceAdd(typ, fs)
		return func(args []string) error {
			o, err := f.options(args)
			if err != nil {
				return err
			}
			v, err := openVault(g.home)
			if err != nil {
				return err
			}
			return runSourceAdd(v, o, cliSourceIO())
		}
	}
}

// declareSourceAdd declares the flags of `source add typ` on fs. No flag
// takes a secret: those are read from stdin.
func declareSourceAdd(typ string, fs *flagSet) *sourceAddFlags {
	f := &sourceAddFlags{typ: typ, fs: fs, str: map[string]*string{}}
	def := func(name, cfgKey, help string) { f.str[cfgKey] = fs.String(name, "", help) }
	def("ttl", "ttl", "how long (`DURATION`) a fetched value is cached (default 5m)")
	def("refresh-ahead", "refresh_ahead", "refresh this long (`DURATION`) before the TTL ends (default TTL/5)")
	def("stale-for", "stale_for", "after a failed refresh, serve the cached value this long (`DURATION`; default 0: fail closed)")
	def("fetch-timeout", "fetch_timeout", "longest time (`DURATION`) one fetch may take (default 30s)")
	f.replace = fs.Bool("replace", false, "replace an existing source of that name")
	f.firstLine = fs.Bool("first-line", false, "keep only the first line of the value")
	switch typ {
	case source.TypeHelvetiSafe:
		def("base-url", "base_url", "HelvetiSafe base `URL`, https://...")
		def("auth", "auth", "`MODE`: oauth2 (client credentials, secret on stdin) or token (portal API token on stdin)")
		def("client-id", "client_id", "OAuth2 client `ID`")
		def("scopes", "scopes", "OAuth2 `SCOPES`, space-separated")
		def("key-mode", "key_mode", "`MODE`: pem (--rsa-key-file) or password (account password on stdin)")
		def("timeout", "timeout", "HTTP timeout (`DURATION`, default 15s)")
		fs.StringVar(&f.keyFile, "rsa-key-file", "", "RSA private key PEM `FILE`, copied into the vault")
		fs.StringVar(&f.caFile, "ca-file", "", "CA bundle PEM `FILE` for a private CA")
		fs.Var(&f.assume, "assume", "override a protocol assumption `NAME=VALUE` (README: HelvetiSafe assumptions)")
	case source.TypeVaultKV:
		def("address", "address", "Vault / OpenBao `URL`, https://host:8200")
		def("mount", "mount", "KV v2 `MOUNT` (default secret)")
		def("namespace", "namespace", "X-Vault-Namespace `NS`")
		def("auth", "auth", "`MODE`: token (token on stdin) or approle (secret ID on stdin)")
		def("role-id", "role_id", "AppRole role `ID`")
		def("approle-mount", "approle_mount", "AppRole auth `MOUNT` (default approle)")
		def("timeout", "timeout", "HTTP timeout (`DURATION`, default 15s)")
		fs.StringVar(&f.caFile, "ca-file", "", "CA bundle PEM `FILE` for a private CA")
	case source.TypeExec:
		def("timeout", "timeout", "command timeout (`DURATION`, default 10s)")
		fs.Var(&f.env, "env", "pass variable `NAME` from airlock's environment (repeatable; PATH and HOME always are)")
		fs.Var(&f.setenv, "setenv", "set `NAME=VALUE` for the command (repeatable; not for secrets)")
	case source.TypeFile:
		def("dir", "dir", "directory `DIR` of secret files (key = file name)")
	}
	return f
}

// options builds the options from the parsed flags and args: NAME, and
// for exec "-- CMD [ARGS...]".
func (f *sourceAddFlags) options(args []string) (*sourceAddOptions, error) {
	o := &sourceAddOptions{Type: f.typ, Name: args[0], Config: map[string]string{}, Files: map[string]string{}, Replace: *f.replace}
	if err := checkSourceName(o.Name); err != nil {
		return nil, err
	}
	var argv []string
	if f.typ == source.TypeExec {
		if f.fs.dash != 1 || len(args) < 2 {
			return nil, withHint(usageError("source add exec needs NAME, then -- and the command"), "e.g. airlock source add exec pass -- pass show {key}")
		}
		argv = args[1:]
	}
	for k, p := range f.str {
		if *p != "" {
			o.Config[k] = *p
		}
	}
	if *f.firstLine {
		o.Config["first_line"] = "true"
	}
	for _, a := range f.assume {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, withHint(usageErrorf("--assume %q: want NAME=VALUE", a), "see the README table of HelvetiSafe assumptions")
		}
		o.Config["assume."+k] = v
	}
	if f.caFile != "" {
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, withHint(fmt.Errorf("--ca-file: %w", err), "give a readable PEM file")
		}
		o.Config["ca_pem"] = string(b)
	}
	return o, o.finish(f.keyFile, argv, f.env, f.setenv)
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

// sourceListCmd is `airlock source list [--json]`.
func sourceListCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print a JSON array")
	return func([]string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		return runSourceList(v.Snapshot(), sourceStatusPath(g.home), *asJSON, Stdout)
	}
}

// sourceRmCmd is `airlock source rm NAME [--force]`.
func sourceRmCmd(g *globals, fs *flagSet) runFunc {
	force := fs.Bool("force", false, "remove it even though credentials refer to it (they then fail until re-pointed)")
	return func(args []string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		return runSourceRm(v, args[0], *force, Stderr)
	}
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

// vaultSetRefCmd is `airlock vault set-ref PATH --source NAME --key KEY`.
func vaultSetRefCmd(g *globals, fs *flagSet) runFunc {
	o := declareSetRef(fs)
	return func(args []string) error {
		o.Path = args[0]
		if err := o.check(); err != nil {
			return err
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		return runSetRef(v, o, Stderr)
	}
}

// declareSetRef declares the flags of `vault set-ref` on fs.
func declareSetRef(fs *flagSet) *setRefOptions {
	o := &setRefOptions{}
	fs.StringVar(&o.Ref.Source, "source", "", "(required) the source (`NAME`, from airlock source list)")
	fs.StringVar(&o.Ref.Key, "key", "", "(required) the secret's name in the source (`KEY`)")
	fs.StringVar(&o.Ref.Field, "field", "", "take one `FIELD` of a structured secret (KV data field, JSON field)")
	fs.IntVar(&o.Ref.Version, "version", 0, "pin version `N` (vault-kv)")
	fs.DurationVar(&o.Ref.TTL, "ttl", 0, "how long (`DURATION`) this credential's value is cached (default: the source's)")
	fs.StringVar(&o.Username, "username", "", "user name `U` (basic auth)")
	fs.BoolVar(&o.Replace, "replace", false, "replace a stored (non-reference) credential at PATH")
	return o
}

// check validates the options before the vault is opened.
func (o *setRefOptions) check() error {
	if err := checkCredPath(o.Path); err != nil {
		return err
	}
	switch {
	case o.Ref.Source == "" || o.Ref.Key == "":
		return usageError("vault set-ref: --source and --key are required")
	case strings.Contains(o.Ref.Field, "#") || o.Ref.Version < 0 || o.Ref.TTL < 0:
		return usageError("vault set-ref: --field must not contain '#'; --version and --ttl must not be negative")
	}
	return nil
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
