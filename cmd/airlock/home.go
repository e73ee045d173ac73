package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// home is airlock's home directory and the files in it, and how this
// invocation unlocks its vault.
type home struct {
	dir            string
	passphraseFile string // --passphrase-file; else AIRLOCK_PASSPHRASE, AIRLOCK_KEY_FILE or a prompt
}

// Dir is the home directory itself.
func (h home) Dir() string { return h.dir }

// VaultPath is the encrypted vault (0600).
func (h home) VaultPath() string { return filepath.Join(h.dir, "airlock.vault") }

// CAPath is the CA certificate, PEM (public).
func (h home) CAPath() string { return filepath.Join(h.dir, "ca.pem") }

// PolicyPath is the policy file.
func (h home) PolicyPath() string { return filepath.Join(h.dir, "policy.yaml") }

// KeysDir holds the agents' key files (0700).
func (h home) KeysDir() string { return filepath.Join(h.dir, "keys") }

// KeyPath is agent name's key file: 64 hex chars of its Ed25519 seed.
func (h home) KeyPath(name string) string { return filepath.Join(h.KeysDir(), name+".key") }

// BundlePath is the system roots plus airlock's CA, for SSL_CERT_FILE and
// friends.
func (h home) BundlePath() string { return filepath.Join(h.dir, "ca-bundle.pem") }

// WgetrcPath is the wgetrc `airlock env` points WGETRC at (ca_certificate).
func (h home) WgetrcPath() string { return filepath.Join(h.dir, "wgetrc") }

// ensureDirs creates the home and keys directories with mode 0700.
func (h home) ensureDirs() error {
	for _, d := range []string{h.dir, h.KeysDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return withHint(fmt.Errorf("create %s: %w", d, err), "pick a writable home with --home DIR or AIRLOCK_HOME")
		}
	}
	return nil
}
