package vault

import (
	"errors"
	"time"
)

// STUB: the vault helper replaces this file's bodies; signatures are the contract.

var errTODO = errors.New("vault: not implemented")

// KDFParams are the Argon2id parameters recorded in the header.
type KDFParams struct {
	MemoryKiB   uint32
	Time        uint32
	Parallelism uint8
}

// DefaultKDF is used by Create unless overridden.
var DefaultKDF = KDFParams{MemoryKiB: 64 * 1024, Time: 3, Parallelism: 4}

// FastKDF is for tests only (AIRLOCK_TEST_FAST_KDF=1 in the CLI).
var FastKDF = KDFParams{MemoryKiB: 8 * 1024, Time: 1, Parallelism: 1}

// Unlock names how to unwrap the data key: a passphrase, a key file, or both
// (either one that works is enough).
type Unlock struct {
	Passphrase []byte
	KeyFile    string
}

// CreateOptions configure a new vault.
type CreateOptions struct {
	KDF     KDFParams // zero: DefaultKDF
	KeyFile string    // when set, also wrap the data key with this key file (created if missing)
}

// Data is an immutable snapshot of the decrypted payload. Do not modify it;
// use Vault.Update.
type Data struct {
	Credentials map[string]*Credential
	Agents      map[string]*Agent
	System      map[string]Secret // airlock's own keys: "ca.key" (PEM), "audit.hmac"
}

// Credential returns the credential at path or an error wrapping ErrNotFound.
func (d *Data) Credential(path string) (*Credential, error) { return nil, errTODO }

// Agent returns the agent or an error wrapping ErrNotFound.
func (d *Data) Agent(name string) (*Agent, error) { return nil, errTODO }

// Vault is an open vault file.
type Vault struct{}

// Create writes a new vault at path; fails with ErrExists if one is there.
func Create(path string, passphrase []byte, opts CreateOptions) (*Vault, error) { return nil, errTODO }

// Open reads and decrypts the vault at path.
func Open(path string, u Unlock) (*Vault, error) { return nil, errTODO }

// Path is the vault file path.
func (v *Vault) Path() string { return "" }

// Snapshot returns the current decrypted data (immutable).
func (v *Vault) Snapshot() *Data { return nil }

// LoadedAt is when the current snapshot was read from disk.
func (v *Vault) LoadedAt() time.Time { return time.Time{} }

// Update locks the file, re-reads it, applies fn to a deep copy and saves.
func (v *Vault) Update(fn func(d *Data) error) error { return errTODO }

// Reload re-reads the file with the in-memory data key; changed reports
// whether the content differs from the current snapshot.
func (v *Vault) Reload() (changed bool, err error) { return false, errTODO }

// ChangePassphrase re-wraps the data key under a new passphrase.
func (v *Vault) ChangePassphrase(newPassphrase []byte) error { return errTODO }
