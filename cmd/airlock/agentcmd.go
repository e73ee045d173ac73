package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock/airlock/vault"
)

var agentNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func checkAgentName(name string) error {
	if !agentNameRE.MatchString(name) {
		return withHint(usageErrorf("invalid agent name %q", name),
			"use 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	return nil
}

// defaultListen is the proxy address put in agent URLs.
func defaultListen() string {
	if v := os.Getenv("AIRLOCK_LISTEN"); v != "" {
		return v
	}
	return "127.0.0.1:7600"
}

// proxyURL is the HTTPS_PROXY value for an agent.
func proxyURL(name, token string) string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(name, token), Host: defaultListen()}).String()
}

// readAgentSeed reads keys/NAME.key: 64 hex chars (SanctumAI format).
func readAgentSeed(h home, name string) ([]byte, error) {
	path := h.KeyPath(name)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, withHint(fmt.Errorf("no key file for agent %s (%s)", name, path), "`airlock agent add "+name+"` creates it; `airlock agent rotate "+name+"` replaces a lost one")
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("read key of agent %s: %w", name, err), "check the permissions of "+path)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, withHint(fmt.Errorf("key file %s is not 64 hex characters", path), "`airlock agent rotate "+name+"` writes a new key")
	}
	return seed, nil
}

// stageKey writes the seed to a temp file next to the key file; commit
// renames it into place. The vault is updated in between, so a failed
// update leaves the old key file untouched.
func stageKey(h home, name string, seed []byte) (commit func() error, cleanup func(), err error) {
	if err := h.ensureDirs(); err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(h.KeysDir(), "."+name+".key.tmp*")
	if err != nil {
		return nil, nil, fmt.Errorf("write key of agent %s: %w", name, err)
	}
	tmp := f.Name()
	cleanup = func() { _ = os.Remove(tmp) }
	_, err = f.WriteString(hex.EncodeToString(seed) + "\n")
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("write key of agent %s: %w", name, err)
	}
	commit = func() error {
		if err := os.Rename(tmp, h.KeyPath(name)); err != nil {
			return fmt.Errorf("write key of agent %s: %w", name, err)
		}
		return nil
	}
	return commit, cleanup, nil
}

func agentAddCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		if err := checkAgentName(args[0]); err != nil {
			return err
		}
		return setAgentKey(g, args[0], false)
	}
}

func agentRotateCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		if err := checkAgentName(args[0]); err != nil {
			return err
		}
		return setAgentKey(g, args[0], true)
	}
}

// setAgentKey registers a new agent (rotate=false) or replaces the key of
// an existing one, then prints the proxy URL: the only time the token is
// shown.
func setAgentKey(g *globals, name string, rotate bool) error {
	v, err := openVault(g.home)
	if err != nil {
		return err
	}
	agent, seed, err := vault.NewAgent(name, nil, time.Now().UTC())
	if err != nil {
		return err
	}
	commit, cleanup, err := stageKey(g.home, name, seed)
	if err != nil {
		return err
	}
	defer cleanup()
	err = v.Update(func(d *vault.Data) error {
		old, ok := d.Agents[name]
		switch {
		case ok && !rotate:
			return withHint(fmt.Errorf("agent %s: %w", name, vault.ErrExists), "`airlock agent rotate "+name+"` gives it a new token; `airlock agent list` shows the agents")
		case !ok && rotate:
			return withHint(fmt.Errorf("agent %s: %w", name, vault.ErrNotFound), "`airlock agent add "+name+"` registers it; `airlock agent list` shows the agents")
		case ok:
			agent.CreatedAt, agent.Disabled = old.CreatedAt, old.Disabled
		}
		if d.Agents == nil {
			d.Agents = map[string]*vault.Agent{}
		}
		d.Agents[name] = agent
		return nil
	})
	if err != nil {
		return updateError("register agent "+name, err)
	}
	if err := commit(); err != nil {
		return withHint(err, "the agent is registered but its key file is missing; run `airlock agent rotate "+name+"`")
	}
	fmt.Fprintln(Stdout, proxyURL(name, vault.ProxyToken(seed)))
	return nil
}

// agentJSON is one `agent list --json` entry.
type agentJSON struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled"`
	KeyFile   bool      `json:"key_file"`
}

func agentListCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print a JSON array")
	return func(args []string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		d := v.Snapshot()
		out := []agentJSON{}
		for _, name := range slices.Sorted(maps.Keys(d.Agents)) {
			a := d.Agents[name]
			_, kerr := os.Stat(g.home.KeyPath(name))
			out = append(out, agentJSON{Name: name, CreatedAt: a.CreatedAt.UTC(), Disabled: a.Disabled, KeyFile: kerr == nil})
		}
		if *asJSON {
			return writeJSON(out)
		}
		tw := tabwriter.NewWriter(Stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tDISABLED\tKEY FILE")
		for _, a := range out {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", a.Name, fmtTime(a.CreatedAt), a.Disabled, yesNo(a.KeyFile))
		}
		return tw.Flush()
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "missing"
}

func agentRmCmd(g *globals, fs *flagSet) runFunc {
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	return func(args []string) error {
		name, err := args[0], checkAgentName(args[0])
		if err != nil {
			return err
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		if _, err := v.Snapshot().Agent(name); err != nil {
			return withHint(fmt.Errorf("agent %s: %w", name, vault.ErrNotFound), "`airlock agent list` shows the agents")
		}
		if !*yes {
			if ok, err := confirm("remove agent " + name + "?"); err != nil || !ok {
				return withHint(errors.Join(errors.New("not removed"), err), "answer y to remove, or pass --yes")
			}
		}
		err = v.Update(func(d *vault.Data) error {
			if _, ok := d.Agents[name]; !ok {
				return withHint(fmt.Errorf("agent %s: %w", name, vault.ErrNotFound), "`airlock agent list` shows the agents")
			}
			delete(d.Agents, name)
			return nil
		})
		if err != nil {
			return updateError("remove agent "+name, err)
		}
		if err := os.Remove(g.home.KeyPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return withHint(fmt.Errorf("remove key file: %w", err), "delete "+g.home.KeyPath(name)+" by hand; the agent is already unregistered")
		}
		fmt.Fprintf(Stderr, "airlock: removed agent %s\n", name)
		return nil
	}
}
