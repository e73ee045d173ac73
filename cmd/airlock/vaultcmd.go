package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

// credPathRE: segments of [A-Za-z0-9_.-] joined by "/".
var credPathRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)

// checkCredPath validates a credential path given by the user.
func checkCredPath(p string) error {
	bad := len(p) > 256 || !credPathRE.MatchString(p)
	for _, seg := range splitPath(p) {
		bad = bad || seg == "." || seg == ".."
	}
	if bad {
		return withHint(usageErrorf("invalid credential path %q", p),
			"use segments of letters, digits, '_', '.', '-' joined by '/', e.g. openai/api-key")
	}
	return nil
}

func splitPath(p string) []string {
	var segs []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, p[start:i])
			start = i + 1
		}
	}
	return segs
}

func notFoundHint(err error) error {
	return withHint(err, "`airlock vault list` shows the stored credentials")
}

func vaultSetCmd(g *globals, fs *flagSet) runFunc {
	expires := fs.String("expires", "", "expiry `WHEN`: 30d, 12h, an RFC 3339 time, or never")
	username := fs.String("username", "", "user name `U` (basic auth)")
	meta := mapFlag{}
	fs.Var(meta, "meta", "metadata `k=v` (repeatable)")
	return func(args []string) error {
		path, err := args[0], checkCredPath(args[0])
		if err != nil {
			return err
		}
		exp, err := parseExpires(*expires, time.Now())
		if err != nil {
			return usageErrorf("--expires %q: %v", *expires, err)
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		value, err := readValue("value for " + path + ": ")
		if err != nil {
			return err
		}
		created := false
		err = v.Update(func(d *vault.Data) error {
			now := time.Now().UTC()
			c := &vault.Credential{Path: path, Kind: vault.KindStatic, CreatedAt: now, Metadata: map[string]string{}}
			if old, ok := d.Credentials[path]; ok {
				if k := kindOf(old); k != vault.KindStatic {
					// A raw value would break an oauth2/aws credential's JSON document.
					return withHint(fmt.Errorf("%s is a %s credential", path, k),
						"update it with `airlock vault set-oauth2` or `airlock vault set-aws`, or `airlock vault rm "+path+"` first")
				}
				c.Kind, c.CreatedAt, c.Username, c.ExpiresAt = old.Kind, old.CreatedAt, old.Username, old.ExpiresAt
				c.Metadata = maps.Clone(old.Metadata)
			}
			created = c.CreatedAt.Equal(now)
			c.Value, c.UpdatedAt = vault.NewSecret(value), now
			if given["username"] {
				c.Username = *username
			}
			if given["meta"] {
				c.Metadata = maps.Clone(map[string]string(meta))
			}
			if given["expires"] {
				c.ExpiresAt = exp
			}
			if d.Credentials == nil {
				d.Credentials = map[string]*vault.Credential{}
			}
			d.Credentials[path] = c
			return nil
		})
		if err != nil {
			return updateError("store "+path, err)
		}
		verb := "updated"
		if created {
			verb = "stored"
		}
		fmt.Fprintf(Stderr, "airlock: %s %s\n", verb, path)
		return nil
	}
}

// credJSON is one `vault list --json` entry: metadata, never the value.
type credJSON struct {
	Path      string            `json:"path"`
	Kind      string            `json:"kind"`
	Username  string            `json:"username"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
	ExpiresAt *time.Time        `json:"expires_at"`
	Metadata  map[string]string `json:"metadata"`
	Source    *source.RefInfo   `json:"source"` // a reference credential's source and fetch status; null for a stored value
}

func vaultListCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print a JSON array")
	return func(args []string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		d := v.Snapshot()
		paths := slices.Sorted(maps.Keys(d.Credentials))
		// A missing or unreadable status file only means "never fetched".
		st, _ := source.ReadStatus(sourceStatusPath(g.home))
		if *asJSON {
			out := make([]credJSON, 0, len(paths))
			for _, p := range paths {
				j := toCredJSON(d.Credentials[p])
				j.Source = refJSON(d.Credentials[p], st)
				out = append(out, j)
			}
			return writeJSON(out)
		}
		tw := tabwriter.NewWriter(Stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tKIND\tCREATED\tUPDATED\tEXPIRES\tSOURCE")
		now := time.Now()
		for _, p := range paths {
			c := d.Credentials[p]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Path, kindOf(c), fmtTime(c.CreatedAt), fmtTime(c.UpdatedAt), fmtExpires(c, now), refColumn(c, st))
		}
		return tw.Flush()
	}
}

func toCredJSON(c *vault.Credential) credJSON {
	j := credJSON{Path: c.Path, Kind: kindOf(c), Username: c.Username, CreatedAt: c.CreatedAt.UTC(),
		UpdatedAt: c.UpdatedAt.UTC(), Metadata: maps.Clone(c.Metadata)}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
	}
	if !c.ExpiresAt.IsZero() {
		t := c.ExpiresAt.UTC()
		j.ExpiresAt = &t
	}
	return j
}

func kindOf(c *vault.Credential) string {
	if c.Kind == "" {
		return vault.KindStatic
	}
	return c.Kind
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtExpires(c *vault.Credential, now time.Time) string {
	s := fmtTime(c.ExpiresAt)
	if c.Expired(now) {
		s += " (expired)"
	}
	return s
}

func writeJSON(v any) error {
	enc := json.NewEncoder(Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func vaultGetCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		path, err := args[0], checkCredPath(args[0])
		if err != nil {
			return err
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		c, err := v.Snapshot().Credential(path)
		if err != nil {
			return notFoundHint(fmt.Errorf("credential %s: %w", path, vault.ErrNotFound))
		}
		if _, err := Stdout.Write(append(append([]byte{}, c.Value.Bytes()...), '\n')); err != nil {
			return fmt.Errorf("write value: %w", err)
		}
		return nil
	}
}

func vaultRmCmd(g *globals, fs *flagSet) runFunc {
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	return func(args []string) error {
		path, err := args[0], checkCredPath(args[0])
		if err != nil {
			return err
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		if _, err := v.Snapshot().Credential(path); err != nil {
			return notFoundHint(fmt.Errorf("credential %s: %w", path, vault.ErrNotFound))
		}
		if !*yes {
			ok, err := confirm("delete credential " + path + "?")
			if err != nil || !ok {
				return withHint(errors.Join(errors.New("not deleted"), err), "answer y to delete, or pass --yes")
			}
		}
		err = v.Update(func(d *vault.Data) error {
			if _, ok := d.Credentials[path]; !ok {
				return fmt.Errorf("credential %s: %w", path, vault.ErrNotFound)
			}
			delete(d.Credentials, path)
			return nil
		})
		if errors.Is(err, vault.ErrNotFound) {
			return notFoundHint(err)
		}
		if err != nil {
			return updateError("delete "+path, err)
		}
		fmt.Fprintf(Stderr, "airlock: deleted %s\n", path)
		return nil
	}
}

func vaultPasswdCmd(g *globals, fs *flagSet) runFunc {
	newFile := fs.String("new-passphrase-file", "", "read the new passphrase from `FILE`")
	return func(args []string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		var p []byte
		switch {
		case *newFile != "":
			p, err = readSecretFile(*newFile, "new-passphrase")
		case os.Getenv("AIRLOCK_NEW_PASSPHRASE") != "":
			p = []byte(os.Getenv("AIRLOCK_NEW_PASSPHRASE"))
		case isTerminal(Stdin):
			p, err = promptTwice("new vault passphrase")
		default:
			err = withHint(errors.New("no new passphrase given"), "set AIRLOCK_NEW_PASSPHRASE, pass --new-passphrase-file, or run in a terminal")
		}
		if err != nil {
			return err
		}
		if len(p) == 0 {
			return withHint(errors.New("empty passphrase"), "choose a non-empty passphrase")
		}
		warnShortPassphrase(p)
		if err := v.ChangePassphrase(p); err != nil {
			return updateError("change passphrase", err)
		}
		fmt.Fprintln(Stderr, "airlock: passphrase changed")
		return nil
	}
}
