package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/vault"
)

// System keys sealed in the vault.
const (
	sysCAKey     = "ca.key"
	sysAuditHMAC = "audit.hmac"
)

// openVault unlocks the vault in h with the passphrase / key file of this
// invocation. A person at a terminal gets passphraseTries tries. Errors
// carry a hint for the user.
func openVault(h home) (*vault.Vault, error) {
	path := h.VaultPath()
	if err := checkVaultFile(path); err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		u, prompted, err := h.unlock()
		if err != nil {
			return nil, err
		}
		v, err := vault.Open(path, u)
		if err == nil {
			noteGeneration(h, v) // rollback warning (generation.go)
			return v, nil
		}
		if !prompted || !errors.Is(err, vault.ErrWrongPassphrase) || try == passphraseTries {
			return nil, vaultError(path, err)
		}
		fmt.Fprintf(Stderr, "airlock: wrong passphrase, try again (%d of %d)\n", try+1, passphraseTries)
	}
}

// checkVaultFile turns a missing vault or a directory in its place into an
// error a user can act on, before asking for a passphrase.
func checkVaultFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return withHint(fmt.Errorf("no vault at %s", path), "run `airlock init` first, or point --home / AIRLOCK_HOME at your airlock home")
	case err != nil:
		return withHint(fmt.Errorf("open vault: %w", err), "check the permissions of "+path)
	case fi.IsDir():
		return withHint(fmt.Errorf("vault path %s is a directory, not a vault file", path), "move the directory away, then restore airlock.vault from a backup or run `airlock init`")
	}
	return nil
}

// vaultError adds the hint matching a vault package error.
func vaultError(path string, err error) error {
	wrapped := err
	if !strings.Contains(err.Error(), path) {
		wrapped = fmt.Errorf("open vault %s: %w", path, err)
	}
	switch {
	case errors.Is(err, vault.ErrWrongPassphrase):
		return withHint(wrapped, "check AIRLOCK_PASSPHRASE, --passphrase-file or AIRLOCK_KEY_FILE; the vault file was not changed")
	case errors.Is(err, vault.ErrCorrupt):
		return withHint(wrapped, "restore airlock.vault from a backup; the file was changed or damaged outside airlock")
	case errors.Is(err, vault.ErrNoUnlock):
		return errNoPassphrase
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return withHint(wrapped, "run `airlock init` first, or point --home / AIRLOCK_HOME at your airlock home")
	}
	return withHint(wrapped, "check that "+path+" is a readable airlock vault")
}

// updateError adds hints to errors of vault.Update.
func updateError(what string, err error) error {
	if hintOf(err) != "" {
		return err
	}
	wrapped := fmt.Errorf("%s: %w", what, err)
	if errors.Is(err, vault.ErrCorrupt) || errors.Is(err, vault.ErrWrongPassphrase) {
		return withHint(wrapped, "the vault changed on disk while airlock was running; check it with `airlock vault list`")
	}
	return withHint(wrapped, "check that the home directory is writable")
}

// loadCA loads ca.pem and the CA key sealed in the vault.
func loadCA(h home, v *vault.Vault) (*certs.CA, error) {
	certPEM, err := os.ReadFile(h.CAPath())
	if err != nil {
		return nil, withHint(fmt.Errorf("read CA certificate: %w", err), "restore ca.pem from a backup (agents trust that certificate), or start a new home with `airlock init`")
	}
	key, ok := v.Snapshot().System[sysCAKey]
	if !ok || key.IsZero() {
		return nil, withHint(fmt.Errorf("vault %s holds no CA key", h.VaultPath()), "this vault was not created by `airlock init`; start a new home with `airlock init`")
	}
	ca, err := certs.LoadCA(certPEM, key.Bytes())
	if err != nil {
		return nil, withHint(fmt.Errorf("load CA %s: %w", h.CAPath(), err), "ca.pem must be the certificate `airlock init` wrote next to this vault; restore it from a backup")
	}
	return ca, nil
}
