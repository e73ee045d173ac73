// Package source fetches credentials from external stores so a secret is
// never copied into airlock's vault: HelvetiSafe, HashiCorp Vault / OpenBao
// KV v2, a command (exec: 1Password op, pass, gopass, aws, security) and
// files (a mounted Kubernetes Secret).
//
// # Shape
//
// Every store implements [Source]. A [Cache] wraps each one: TTL per source
// and per credential, refresh ahead of expiry, a stale window after a
// failed refresh (default 0: fail closed), single-flight, metrics. A
// [Registry] builds the sources and their caches from the vault's
// [vault.SourceDef] entries and resolves [vault.KindRef] credentials.
//
// # Errors
//
// Errors wrap one of [ErrNotFound], [ErrAuth], [ErrExpired] or
// [ErrUnavailable]; the proxy maps them to CREDENTIAL_NOT_FOUND,
// CREDENTIAL_INVALID, CREDENTIAL_EXPIRED and CREDENTIAL_SOURCE_UNAVAILABLE.
// [*Error] carries the source name. No error, log line or metric ever holds
// a value or a source's own secret.
package source

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// Value is one fetched credential.
type Value struct {
	Secret    vault.Secret
	Kind      string    // vault.KindStatic unless the source says otherwise
	ExpiresAt time.Time // zero: the source set no expiry
	Username  string
}

// Source fetches the secret named key. Implementations are safe for
// concurrent use and return errors wrapping the sentinels below.
type Source interface {
	Fetch(ctx context.Context, key string) (Value, error)
}

// Checker is implemented by sources that can prove they answer without
// fetching a secret (used by `airlock doctor`).
type Checker interface {
	Check(ctx context.Context) error
}

// Watcher is implemented by sources that learn about changes themselves
// (file): the cache registers fn and drops the entry for key ("" = all).
type Watcher interface {
	OnChange(fn func(key string))
}

// Sentinel errors callers branch on.
//
//   - ErrNotFound: the source has no such secret (→ CREDENTIAL_NOT_FOUND, 502).
//   - ErrAuth: the source refused airlock's own credentials or permissions,
//     or a value could not be decrypted with them (→ CREDENTIAL_INVALID).
//   - ErrExpired: the secret is past its expiry (→ CREDENTIAL_EXPIRED, 403).
//   - ErrUnavailable: the source did not answer usefully and no cached
//     value may be served any more (→ CREDENTIAL_SOURCE_UNAVAILABLE, 503).
var (
	ErrNotFound    = errors.New("credential not found in the source")
	ErrAuth        = errors.New("credential source refused airlock's credentials")
	ErrExpired     = errors.New("credential expired")
	ErrUnavailable = errors.New("credential source unavailable")
)

// Error is what [Cache] and [Registry] return: which source, which key,
// the class (one of the sentinels) and a cause that never holds a value.
type Error struct {
	Source     string
	Key        string
	Class      error         // ErrNotFound, ErrAuth, ErrExpired or ErrUnavailable
	Cause      error         // what went wrong; may be nil
	RetryAfter time.Duration // from a 429 or Retry-After, when known
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("credential source %q: key %q: ", e.Source, e.Key)
	switch {
	case e.Cause == nil:
		return msg + e.Class.Error()
	case errors.Is(e.Cause, e.Class):
		return msg + e.Cause.Error()
	}
	return msg + e.Cause.Error() + ": " + e.Class.Error()
}

// Unwrap returns the class and the cause, so errors.Is finds both.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Class}
	}
	return []error{e.Class, e.Cause}
}

// Code is the airlock error code the proxy answers with for err, or "" if
// err is not a source error.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "CREDENTIAL_NOT_FOUND"
	case errors.Is(err, ErrExpired):
		return "CREDENTIAL_EXPIRED"
	case errors.Is(err, ErrAuth):
		return "CREDENTIAL_INVALID"
	case errors.Is(err, ErrUnavailable):
		return "CREDENTIAL_SOURCE_UNAVAILABLE"
	}
	return ""
}

// classOf returns the sentinel err wraps; anything else is ErrUnavailable.
func classOf(err error) error {
	for _, c := range []error{ErrNotFound, ErrExpired, ErrAuth, ErrUnavailable} {
		if errors.Is(err, c) {
			return c
		}
	}
	return ErrUnavailable
}

// resultOf is the metrics label of a fetch outcome (bounded).
func resultOf(err error) string {
	switch classOf(err) {
	case ErrNotFound:
		return "not_found"
	case ErrExpired:
		return "expired"
	case ErrAuth:
		return "auth"
	}
	return "unavailable"
}

// retryError is a cause that carries a server's Retry-After.
type retryError struct {
	msg   string
	after time.Duration
}

func (e *retryError) Error() string { return e.msg }
func (e *retryError) Unwrap() error { return ErrUnavailable }

// SourceKey is how a [vault.Ref] is passed to [Source.Fetch]: KEY, then
// "#FIELD" when a field is named (or KEY itself holds a '#'), then
// "@VERSION" when pinned (or FIELD holds an '@'). [ParseKey] inverts it.
func SourceKey(r vault.Ref) string {
	k := r.Key
	if r.Field != "" || r.Version != 0 || strings.Contains(r.Key, "#") {
		k += "#" + r.Field
	}
	if r.Version != 0 || strings.Contains(r.Field, "@") {
		k += "@" + strconv.Itoa(r.Version)
	}
	return k
}

// ParseKey splits a [SourceKey] back into key, field and version.
func ParseKey(s string) (key, field string, version int, err error) {
	i := strings.LastIndexByte(s, '#')
	if i < 0 {
		return s, "", 0, nil
	}
	key, field = s[:i], s[i+1:]
	if j := strings.LastIndexByte(field, '@'); j >= 0 {
		n, err := strconv.Atoi(field[j+1:])
		if err != nil || n < 0 || field[j+1:] != strconv.Itoa(n) {
			return "", "", 0, fmt.Errorf("key %q: version must be a number", s)
		}
		field, version = field[:j], n
	}
	if key == "" {
		return "", "", 0, fmt.Errorf("key %q: empty name", s)
	}
	return key, field, version, nil
}
