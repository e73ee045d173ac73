package vault

import (
	"crypto/subtle"
	"fmt"
)

const redacted = "[REDACTED]"

// Secret holds sensitive bytes. Every formatting path (String, GoString,
// fmt verbs, JSON, text marshalling) prints [REDACTED]; only Bytes gives the
// value.
type Secret struct{ b []byte }

// NewSecret wraps b (not copied).
func NewSecret(b []byte) Secret { return Secret{b: b} }

// Bytes returns the secret bytes. Callers must not modify them.
func (s Secret) Bytes() []byte { return s.b }

// Len is the length of the secret in bytes.
func (s Secret) Len() int { return len(s.b) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(b []byte) bool { return subtle.ConstantTimeCompare(s.b, b) == 1 }

func (Secret) String() string                { return redacted }
func (Secret) GoString() string              { return redacted }
func (Secret) MarshalJSON() ([]byte, error)  { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
