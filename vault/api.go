// Package vault is airlock's encrypted credential store: one file holding
// credentials, the agents registry and airlock's own sealed keys (the CA key,
// the audit HMAC key).
//
// # File format
//
// A small authenticated header (format version, KDF parameters, salt, the
// random 32-byte data key wrapped once per unlock method) followed by one
// AEAD ciphertext of the whole payload, with the header as associated data.
// See format.go.
//
// # Concurrency
//
// A [Vault] is safe for concurrent use. [Vault.Snapshot] returns an immutable
// view that callers must not modify; [Vault.Update] takes the exclusive file
// lock, re-reads the file, applies the change to a copy and saves atomically.
package vault

import (
	"crypto/ed25519"
	"errors"
	"time"
)

// Sentinel errors callers branch on. Returned errors wrap them with context.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase or key file")
	ErrCorrupt         = errors.New("vault file is corrupt or has been tampered with")
	ErrNotFound        = errors.New("not found")
	ErrExists          = errors.New("already exists")
	ErrNoUnlock        = errors.New("no passphrase or key file given")
)

// Credential kinds.
const (
	KindStatic = "static"
	KindOAuth2 = "oauth2"
	KindAWS    = "aws"
)

// Credential is one stored secret. Value never appears in formatted output.
type Credential struct {
	Path      string
	Kind      string // KindStatic when empty
	Value     Secret
	Username  string            // optional, for basic auth
	Metadata  map[string]string // free-form (oauth2 token_url, client_id, aws access_key_id, ...)
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time // zero: never expires
}

// Expired reports whether the credential is past its ExpiresAt at now.
func (c *Credential) Expired(now time.Time) bool {
	return !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)
}

// Agent is one registered agent identity.
type Agent struct {
	Name      string
	PublicKey ed25519.PublicKey
	TokenHash []byte // SHA-256 of the proxy token
	CreatedAt time.Time
	Disabled  bool
}

// ProxyToken derives an agent's proxy password from its Ed25519 seed:
// hex(HMAC-SHA256(seed, "airlock proxy token")). STUB until implemented.
func ProxyToken(seed []byte) string { return "" }

// HashToken is what the agents registry stores for a proxy token: SHA-256.
func HashToken(token string) []byte { return nil }

// AuthenticateToken returns the enabled agent whose token hash matches
// (constant-time compare), or false.
func (d *Data) AuthenticateToken(name, token string) (*Agent, bool) { return nil, false }
