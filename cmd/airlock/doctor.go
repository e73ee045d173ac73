package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// Check outcomes. Only statusBroken makes doctor exit 1.
const (
	statusOK      = "ok"
	statusWarn    = "warn"
	statusBroken  = "broken"
	statusSkipped = "skipped"
)

// Thresholds for expiry warnings.
const (
	caWarnBefore   = 30 * 24 * time.Hour
	credWarnBefore = 7 * 24 * time.Hour
)

// checkResult is one line of the doctor's report. Detail and Fix never
// hold a secret value.
type checkResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorReport is `airlock doctor --json`.
type doctorReport struct {
	Home    string        `json:"home"`
	OK      bool          `json:"ok"`
	Checks  []checkResult `json:"checks"`
	Broken  int           `json:"broken"`
	Warning int           `json:"warnings"`
}

// doctor runs the checks against one home; later checks use what earlier
// ones found (the opened vault).
type doctor struct {
	h      home
	g      *globals
	now    time.Time
	vault  *vault.Vault
	checks []checkResult
}

func (d *doctor) add(name, status, detail, fix string) {
	d.checks = append(d.checks, checkResult{Name: name, Status: status, Detail: detail, Fix: fix})
}

func doctorCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print one JSON document")
	return func(args []string) error {
		d := &doctor{h: g.home, g: g, now: time.Now()}
		d.run()
		rep := d.report()
		if *asJSON {
			if err := writeJSON(rep); err != nil {
				return err
			}
			if !rep.OK {
				return &exitCodeError{code: exitFailure}
			}
			return nil
		}
		printDoctor(rep)
		if !rep.OK {
			return withHint(fmt.Errorf("doctor found %d broken check(s)", rep.Broken), "apply the fixes above, then run `airlock doctor` again")
		}
		return nil
	}
}

// run performs every check in order.
func (d *doctor) run() {
	if !d.checkHome() {
		return // nothing else can be checked without a home
	}
	d.checkVault()
	d.checkPolicy()
	d.checkCA()
	d.checkCredentials()
	d.checkSourceDefs()
	d.checkPort()
	d.checkReload()
	d.checkShellProxy()
	d.checkIsolation() // isolatecmd.go
}

func (d *doctor) report() doctorReport {
	rep := doctorReport{Home: d.h.Dir(), Checks: d.checks}
	for _, c := range d.checks {
		switch c.Status {
		case statusBroken:
			rep.Broken++
		case statusWarn:
			rep.Warning++
		}
	}
	rep.OK = rep.Broken == 0
	return rep
}

func printDoctor(rep doctorReport) {
	marks := map[string]string{statusOK: "✓", statusWarn: "!", statusBroken: "✗", statusSkipped: "-"}
	var b strings.Builder
	fmt.Fprintf(&b, "airlock doctor: home %s\n", rep.Home)
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "  %s %s: %s\n", marks[c.Status], c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(&b, "      fix: %s\n", c.Fix)
		}
	}
	switch {
	case rep.Broken > 0:
		fmt.Fprintf(&b, "%d broken, %d warning(s)\n", rep.Broken, rep.Warning)
	case rep.Warning > 0:
		fmt.Fprintf(&b, "no problems, %d warning(s)\n", rep.Warning)
	default:
		b.WriteString("everything looks fine\n")
	}
	fmt.Fprint(Stdout, b.String())
}

// hasUnlock reports whether the vault can be opened without asking: a
// passphrase source, a key file, or a terminal to prompt on.
func (d *doctor) hasUnlock() bool {
	return d.h.passphraseFile != "" || os.Getenv("AIRLOCK_PASSPHRASE") != "" ||
		os.Getenv("AIRLOCK_KEY_FILE") != "" || canPrompt()
}

func (d *doctor) checkVault() {
	const name = "vault"
	if err := checkVaultFile(d.h.VaultPath()); err != nil {
		d.add(name, statusBroken, err.Error(), hintOf(err))
		return
	}
	if !d.hasUnlock() {
		d.add(name, statusSkipped, "no passphrase available, the vault was not opened",
			"set AIRLOCK_PASSPHRASE or AIRLOCK_KEY_FILE, or pass --passphrase-file, to check the vault and credentials too")
		return
	}
	v, err := openVault(d.h)
	if err != nil {
		fix := hintOf(err)
		if errors.Is(err, vault.ErrNoUnlock) {
			fix = hintOf(errNoPassphrase)
		}
		d.add(name, statusBroken, err.Error(), fix)
		return
	}
	d.vault = v
	s := v.Snapshot()
	d.add(name, statusOK, fmt.Sprintf("opens (%d credential(s), %d agent(s))", len(s.Credentials), len(s.Agents)), "")
}
