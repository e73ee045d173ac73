package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/airlock/airlock/vault"
)

// The admin token guards the admin listener's state-changing and
// data-revealing endpoints (seal, status, approvals, console login,
// pprof). It lives in the vault's System map, so only who can unlock the
// vault can read it; an agent under `airlock run` gets none of airlock's
// AIRLOCK_* variables and so cannot.
const (
	sysAdminToken   = "admin.token"
	adminTokenBytes = 32
	adminTokenEnv   = "AIRLOCK_ADMIN_TOKEN" // operator override for scripts
)

// newAdminToken is a fresh random admin token.
func newAdminToken() (vault.Secret, error) {
	b := make([]byte, adminTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return vault.Secret{}, fmt.Errorf("generate admin token: %w", err)
	}
	return vault.NewSecret([]byte("alk_admin_" + hex.EncodeToString(b))), nil
}

// adminTokenOf is the admin token held by v, or "" when it has none.
func adminTokenOf(v *vault.Vault) string {
	t, ok := v.Snapshot().System[sysAdminToken]
	if !ok || t.IsZero() {
		return ""
	}
	return string(t.Bytes())
}

// ensureAdminToken returns v's admin token, creating it first in a vault
// made before admin tokens existed.
func ensureAdminToken(v *vault.Vault) (string, error) {
	if t := adminTokenOf(v); t != "" {
		return t, nil
	}
	tok, err := newAdminToken()
	if err != nil {
		return "", err
	}
	err = v.Update(func(d *vault.Data) error {
		if d.System == nil {
			d.System = map[string]vault.Secret{}
		}
		if _, ok := d.System[sysAdminToken]; !ok { // another writer may have made one
			d.System[sysAdminToken] = tok
		}
		return nil
	})
	if err != nil {
		return "", updateError("store the admin token", err)
	}
	return adminTokenOf(v), nil
}

// cliAdminToken is the token the CLI sends to the admin listener:
// AIRLOCK_ADMIN_TOKEN when set, else the one in the vault.
func cliAdminToken(g *globals) (string, error) {
	if t := strings.TrimSpace(os.Getenv(adminTokenEnv)); t != "" {
		return t, nil
	}
	v, err := openVault(g.home)
	if err != nil {
		return "", err
	}
	t := adminTokenOf(v)
	if t == "" {
		return "", withHint(errors.New("the vault holds no admin token yet"),
			"start `airlock serve` once (it creates the token), then run this again")
	}
	return t, nil
}

// adminTokenCmd prints the admin token (`airlock admin token`).
func adminTokenCmd(g *globals, fs *flagSet) runFunc {
	rotate := fs.Bool("rotate", false, "replace the token with a new one (restart serve to use it)")
	return func([]string) error {
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		if *rotate {
			tok, err := newAdminToken()
			if err != nil {
				return err
			}
			if err := v.Update(func(d *vault.Data) error { d.System[sysAdminToken] = tok; return nil }); err != nil {
				return updateError("store the admin token", err)
			}
		}
		tok, err := ensureAdminToken(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(Stdout, tok)
		return err
	}
}
