// Package placeholder finds and substitutes airlock placeholder secrets:
// an agent writes {{airlock:PATH}} where an API wants its key in a place a
// header cannot carry it (the path, the query, a header the SDK builds
// itself, the body), and airlock puts the credential's value there, only
// for a rule that binds that credential for that agent and host.
//
// # Syntax
//
// A placeholder is the literal text "{{airlock:", a credential path, and
// "}}". PATH has the charset of the policy's credential paths: one or more
// "/"-separated segments of A-Z a-z 0-9 . _ @ + -, no segment empty or
// starting with ".", at most [MaxPathLen] bytes. Anything else (a space,
// an empty segment, a longer path, a missing "}}") is not a placeholder
// and is left alone: it cannot name a credential, so forwarding it leaks
// nothing. In the path and the query the braces and the path's characters
// may also be percent-encoded (Go's client sends "%7B%7Bairlock:...%7D%7D").
//
// # Decisions
//
// Every function takes an [Allowed] lookup: it returns the secret of a
// path the request's rule binds, or false. A placeholder whose path is not
// allowed makes the function fail with a [*NotAllowedError] (errors.Is
// [ErrNotAllowed]); the proxy answers 403 PLACEHOLDER_NOT_ALLOWED and sends
// nothing upstream. The path is judged by policy with the placeholder still
// in it; substitution comes after the decision.
//
// # Encoding
//
// The secret is encoded for where it goes: [url.PathEscape] in the path,
// [url.QueryEscape] in the query, verbatim in a header (refused with
// [ErrUnsafeHeaderValue] when it holds a control character such as CR or
// LF), and in a body by the [Escaper] chosen from the Content-Type
// ([EscaperFor]: JSON string escaping, form encoding, or verbatim).
//
// # Bodies
//
// Bodies are rewritten as a stream by [Rewriter], which holds back at most
// [MaxLen]-1 bytes between reads. [Body] chooses between checking a small
// body whole before anything is sent (exact new Content-Length) and
// streaming a large or chunked one (sent chunked; a disallowed placeholder
// then fails the stream before its bytes are passed on). Bodies with a
// Content-Encoding are refused ([CheckEncoding]): a compressed placeholder
// can be neither found nor substituted.
//
// # One call
//
// [Request] applies all of this to an outgoing request after the policy
// decision: with the rule's [Allowed] set where the rule substitutes
// placeholders, or with nil elsewhere, where it only detects them (and
// keeps the body's framing).
package placeholder

import (
	"errors"
	"fmt"
	"slices"
)

// Prefix and Suffix delimit a placeholder.
const (
	Prefix = "{{airlock:"
	Suffix = "}}"
)

// MaxPathLen is the longest credential path (as the policy's) and MaxLen
// the longest placeholder.
const (
	MaxPathLen = 256
	MaxLen     = len(Prefix) + MaxPathLen + len(Suffix)
)

// ErrNotAllowed is matched by a [*NotAllowedError].
var ErrNotAllowed = errors.New("placeholder not allowed")

// ErrUnsafeHeaderValue is returned when a secret cannot be put in a header
// verbatim: it holds CR, LF, NUL or another control character.
var ErrUnsafeHeaderValue = errors.New("secret holds a control character and cannot go in a header")

// ErrEncodedBody is returned by [CheckEncoding] for a body with a
// Content-Encoding other than identity.
var ErrEncodedBody = errors.New("placeholders cannot be substituted in a body with a Content-Encoding")

// NotAllowedError names a placeholder whose credential the request's rule
// does not bind, and where it was found. The path is a credential name,
// never a secret.
type NotAllowedError struct {
	Path  string // the credential path inside the placeholder
	Where string // "path", "query", "header NAME" or "body"
}

func (e *NotAllowedError) Error() string {
	return fmt.Sprintf("placeholder for %q in the %s: no rule binds this credential here", e.Path, e.Where)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// Allowed returns the secret of a credential path the request's rule binds
// for substitution, or false.
type Allowed func(path string) (secret []byte, ok bool)

// Only allows exactly one path, the rule's credential.
func Only(path string, secret []byte) Allowed {
	return func(p string) ([]byte, bool) {
		if p != path {
			return nil, false
		}
		return secret, true
	}
}

// None allows nothing: use it on rules without placeholder substitution,
// so that any placeholder is refused.
func None(string) ([]byte, bool) { return nil, false }

// Ref is one placeholder found in a string: its credential path and its
// byte span [Start, End) in the string searched.
type Ref struct {
	Path       string
	Start, End int
}

// Find returns the placeholders of s, literal form only (headers and
// bodies), leftmost first, not overlapping.
func Find(s string) []Ref {
	var refs []Ref
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		if b[i] != '{' {
			continue
		}
		if n, _ := match(b[i:]); n > 0 {
			refs = append(refs, Ref{Path: s[i+len(Prefix) : i+n-len(Suffix)], Start: i, End: i + n})
			i += n - 1
		}
	}
	return refs
}

// Paths returns the distinct credential paths of refs, sorted.
func Paths(refs []Ref) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Path)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// match looks for a placeholder at the start of b. It returns its length,
// or 0 and partial=true when b is a proper prefix of what could still be a
// placeholder once more bytes arrive, or 0 and false.
func match(b []byte) (n int, partial bool) {
	for k := 0; k < len(Prefix); k++ {
		if k >= len(b) {
			return 0, true
		}
		if b[k] != Prefix[k] {
			return 0, false
		}
	}
	i := len(Prefix)
	for i < len(b) && pathChar(b[i]) {
		i++
		if i-len(Prefix) > MaxPathLen {
			return 0, false
		}
	}
	if i == len(b) {
		return 0, true
	}
	if b[i] != '}' {
		return 0, false
	}
	if i+1 == len(b) {
		return 0, validPath(b[len(Prefix):i])
	}
	if b[i+1] != '}' || !validPath(b[len(Prefix):i]) {
		return 0, false
	}
	return i + 2, false
}

func pathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '@', '+', '-', '/':
		return true
	}
	return false
}

// validPath checks the segment rules of a credential path whose bytes are
// all pathChar: segments non-empty, none starting with ".".
func validPath(p []byte) bool {
	if len(p) == 0 || len(p) > MaxPathLen {
		return false
	}
	start := true
	for _, c := range p {
		switch {
		case c == '/':
			if start {
				return false
			}
			start = true
		case start && c == '.':
			return false
		default:
			start = false
		}
	}
	return !start
}
