package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/airlock/airlock/vault"
)

// Rollback warning. The vault's payload carries a generation that every
// save increments (vault/generation.go); a running serve refuses to reload
// a lower one. A fresh CLI process has nothing loaded to compare with, so
// the home keeps the newest generation this CLI saw or wrote, in
// vault.generation. Opening a vault below it means an older copy of
// airlock.vault was put back: agents revoked or re-keyed since are valid
// in it again.

// generationFile is the state file in the home.
func generationFile(h home) string { return filepath.Join(h.Dir(), "vault.generation") }

// noteGeneration warns on Stderr when v is older than the newest
// generation recorded for h, records v's generation otherwise, and
// records every later save of v. It never fails the command: the state
// file is a tripwire, not a lock.
func noteGeneration(h home, v *vault.Vault) {
	path := generationFile(h)
	seen, ok := readGeneration(path)
	switch g := v.Generation(); {
	case ok && g < seen:
		fmt.Fprintf(Stderr, "airlock: warning: %s is at generation %d, but this home has seen generation %d: an older copy of the vault replaced the newer one, and agents or tokens revoked since then are valid in it again\n",
			v.Path(), g, seen)
		fmt.Fprintf(Stderr, "airlock: hint: restore the newest airlock.vault from your backup; a running `airlock serve` keeps the newer one loaded and refuses this file; if you restored the old vault on purpose, delete %s\n", path)
	default:
		writeGeneration(path, g)
	}
	v.OnSave(func(g uint64) { writeGeneration(path, g) })
}

// restartGeneration records a vault just created in h: the generation a
// deleted vault reached no longer applies.
func restartGeneration(h home, v *vault.Vault) {
	_ = os.Remove(generationFile(h))
	noteGeneration(h, v)
}

func readGeneration(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// writeGeneration replaces the state file (temp file and rename), never
// lowering it. Errors are ignored: a read-only home only loses the warning.
func writeGeneration(path string, g uint64) {
	if seen, ok := readGeneration(path); ok && seen >= g {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".vault.generation-*")
	if err != nil {
		return
	}
	_, werr := fmt.Fprintf(f, "%d\n", g)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), path) != nil {
		_ = os.Remove(f.Name())
	}
}
