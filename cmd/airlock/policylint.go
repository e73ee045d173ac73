package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// Lint warnings of `policy check` and `doctor` (policy.Lint): names the
// policy uses that the home does not have. They go to stderr and never
// change the exit code.

// lintInventory is what the home holds: the vault's credential paths (nil
// when v is nil, the vault could not be opened without a prompt) and the
// agents with a key file in keys/ (nil without a keys directory).
func lintInventory(h home, v *vault.Vault) policy.Inventory {
	var inv policy.Inventory
	if v != nil {
		inv.Credentials = v.Snapshot().CredentialPaths()
		if inv.Credentials == nil {
			inv.Credentials = []string{}
		}
	}
	ents, err := os.ReadDir(h.KeysDir())
	if err != nil {
		return inv
	}
	inv.Agents = []string{}
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".key"); ok && e.Type().IsRegular() && !strings.HasPrefix(name, ".") {
			inv.Agents = append(inv.Agents, name)
		}
	}
	slices.Sort(inv.Agents)
	return inv
}

// openVaultNoPrompt opens the vault when a passphrase file, AIRLOCK_PASSPHRASE
// or AIRLOCK_KEY_FILE can unlock it; nil otherwise (or when it fails: the
// lint then skips the credential checks).
func openVaultNoPrompt(h home) *vault.Vault {
	if h.passphraseFile == "" && envPassphrase() == nil && os.Getenv("AIRLOCK_KEY_FILE") == "" {
		return nil
	}
	if _, err := os.Stat(h.VaultPath()); err != nil {
		return nil
	}
	v, err := openVault(h)
	if err != nil {
		return nil
	}
	return v
}

// printLint prints each warning of policy.Lint(p, inv) on stderr and
// returns how many there were.
func printLint(p *policy.Policy, inv policy.Inventory) int {
	ws := policy.Lint(p, inv)
	for _, w := range ws {
		fmt.Fprintln(Stderr, w.String())
	}
	return len(ws)
}

// checkSourceDefs is the doctor's check of the vault's credential sources
// (each one asked to answer, bounded by sourceCheckTimeout).
func (d *doctor) checkSourceDefs() {
	if d.vault == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourceCheckTimeout)
	defer cancel()
	for _, c := range checkSources(ctx, d.vault.Snapshot()) {
		d.add(c.Name, c.Status, c.Detail, c.Fix)
	}
}

// sourceCheckTimeout bounds the doctor's source checks together.
const sourceCheckTimeout = 20 * time.Second
