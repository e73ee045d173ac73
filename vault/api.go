// Package vault is airlock's encrypted credential store: one file holding
// credentials, the agents registry and airlock's own sealed keys (the CA key,
// the audit HMAC key).
//
// # File format
//
// A small authenticated header (format version, Argon2id parameters, salt,
// the random 32-byte data key wrapped once per unlock method: passphrase,
// and optionally a key file) followed by one XChaCha20-Poly1305 ciphertext
// of the whole payload, with the header as associated data, and a SHA-256
// trailer. The byte layout is documented in format.go. Argon2id parameters
// are bounded before any key derivation, so a hostile file is refused fast.
//
// # Concurrency
//
// A [Vault] is safe for concurrent use. [Vault.Snapshot] returns an immutable
// view that callers must not modify; [Vault.Update] takes an exclusive flock
// on the sibling file PATH.lock, re-reads the file with the in-memory data
// key, applies the change to a deep copy and saves atomically (temp file,
// fsync, rename, fsync of the directory). Two processes updating one vault
// never lose each other's change; a crash leaves the old or the new file.
//
// # Secrets
//
// Values are held as [Secret], whose every formatting path prints
// [REDACTED]. Errors never contain values, passphrases or key files.
package vault

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"
)

// Sentinel errors callers branch on. Returned errors wrap them with context.
//
//   - ErrWrongPassphrase: an intact vault whose passphrase or key-file slot
//     does not open with what was given (Open; the file is not changed).
//   - ErrCorrupt: damaged, truncated or tampered file, or a header outside
//     the accepted bounds (Open, Update, Reload).
//   - ErrNotFound: no such credential or agent (Data methods).
//   - ErrExists: Create on an existing path.
//   - ErrNoUnlock: neither passphrase nor key file given.
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
// hex(HMAC-SHA256(key=seed, msg="airlock proxy token")).
func ProxyToken(seed []byte) string {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("airlock proxy token"))
	return hex.EncodeToString(m.Sum(nil))
}

// HashToken is what the agents registry stores for a proxy token: SHA-256.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// AuthenticateToken returns the enabled agent whose token hash matches
// (constant-time compare), or false. Unknown and disabled agents are refused.
func (d *Data) AuthenticateToken(name, token string) (*Agent, bool) {
	got := HashToken(token)
	a, ok := d.Agents[name]
	if !ok || a == nil {
		subtle.ConstantTimeCompare(got, got) // same work as a known name
		return nil, false
	}
	match := subtle.ConstantTimeCompare(got, a.TokenHash) == 1
	if !match || a.Disabled {
		return nil, false
	}
	return a, true
}
