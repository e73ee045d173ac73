package placeholder

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// FindEscaped returns the placeholders of an escaped URL part (a path as
// [url.URL.EscapedPath] gives it, or a raw query), where any byte of the
// placeholder may be percent-encoded. Start and End index escaped.
func FindEscaped(escaped string) []Ref {
	dec, at := unescapeMap(escaped)
	var refs []Ref
	for i := 0; i < len(dec); i++ {
		if dec[i] != '{' {
			continue
		}
		if n, _ := match(dec[i:]); n > 0 {
			refs = append(refs, Ref{
				Path:  string(dec[i+len(Prefix) : i+n-len(Suffix)]),
				Start: at[i],
				End:   at[i+n],
			})
			i += n - 1
		}
	}
	return refs
}

// unescapeMap decodes the %XX escapes of s and returns the decoded bytes
// and, for each decoded index (and one past the end), the index in s.
// A "%" not followed by two hex digits stays a literal "%".
func unescapeMap(s string) ([]byte, []int) {
	dec := make([]byte, 0, len(s))
	at := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		at = append(at, i)
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			dec = append(dec, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 3
			continue
		}
		dec = append(dec, s[i])
		i++
	}
	at = append(at, len(s))
	return dec, at
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// replace substitutes refs in s with enc(secret), failing on the first
// placeholder allowed does not know.
func replace(s string, refs []Ref, allowed Allowed, where string, enc func([]byte) (string, error)) (string, []string, error) {
	if len(refs) == 0 {
		return s, nil, nil
	}
	var b strings.Builder
	var used []string
	last := 0
	for _, r := range refs {
		secret, ok := allowed(r.Path)
		if !ok {
			return "", nil, &NotAllowedError{Path: r.Path, Where: where}
		}
		v, err := enc(secret)
		if err != nil {
			return "", nil, fmt.Errorf("placeholder for %q in the %s: %w", r.Path, where, err)
		}
		b.WriteString(s[last:r.Start])
		b.WriteString(v)
		last = r.End
		used = append(used, r.Path)
	}
	b.WriteString(s[last:])
	return b.String(), used, nil
}

// ReplacePath substitutes the placeholders of an escaped path with the
// path-escaped secret ("/" in a secret becomes %2F: it stays in its
// segment; a secret "." or ".." is escaped too). It returns the new escaped path and the paths used.
func ReplacePath(escaped string, allowed Allowed) (string, []string, error) {
	return replace(escaped, FindEscaped(escaped), allowed, "path", func(s []byte) (string, error) {
		v := url.PathEscape(string(s))
		if v == "." || v == ".." { // a whole segment would climb after the policy judged the path
			v = strings.ReplaceAll(v, ".", "%2E")
		}
		return v, nil
	})
}

// ReplaceQuery substitutes the placeholders of a raw query with the
// query-escaped secret.
func ReplaceQuery(rawQuery string, allowed Allowed) (string, []string, error) {
	return replace(rawQuery, FindEscaped(rawQuery), allowed, "query", func(s []byte) (string, error) {
		return url.QueryEscape(string(s)), nil
	})
}

// ReplaceURL substitutes the placeholders of u's path and query in place,
// after the policy has judged u as sent. On error u is unchanged.
func ReplaceURL(u *url.URL, allowed Allowed) ([]string, error) {
	p, used, err := ReplacePath(u.EscapedPath(), allowed)
	if err != nil {
		return nil, err
	}
	q, usedQ, err := ReplaceQuery(u.RawQuery, allowed)
	if err != nil {
		return nil, err
	}
	if len(used) > 0 {
		dec, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("placeholder in the path: %w", err)
		}
		u.Path, u.RawPath = dec, p
	}
	u.RawQuery = q
	return append(used, usedQ...), nil
}

// ReplaceHeaderValue substitutes the placeholders of one header value with
// the secret verbatim. A secret holding a control character (CR, LF, NUL,
// ...; tab is fine) is refused with [ErrUnsafeHeaderValue]: it would split
// or corrupt the header.
func ReplaceHeaderValue(name, value string, allowed Allowed) (string, []string, error) {
	return replace(value, Find(value), allowed, "header "+name, func(s []byte) (string, error) {
		for _, c := range s {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", ErrUnsafeHeaderValue
			}
		}
		return string(s), nil
	})
}

// ReplaceHeader substitutes the placeholders of every value of h. On error
// h is unchanged.
func ReplaceHeader(h http.Header, allowed Allowed) ([]string, error) {
	type change struct {
		name string
		i    int
		v    string
	}
	var changes []change
	var used []string
	for name, vs := range h {
		for i, v := range vs {
			if !strings.Contains(v, Prefix) {
				continue
			}
			nv, u, err := ReplaceHeaderValue(name, v, allowed)
			if err != nil {
				return nil, err
			}
			changes = append(changes, change{name, i, nv})
			used = append(used, u...)
		}
	}
	for _, c := range changes {
		h[c.name][c.i] = c.v
	}
	return used, nil
}

// CheckEncoding refuses a body with a Content-Encoding other than
// identity: call it before substituting in a body.
func CheckEncoding(h http.Header) error {
	for _, v := range h.Values("Content-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			if p := strings.TrimSpace(part); p != "" && !strings.EqualFold(p, "identity") {
				return fmt.Errorf("content-encoding %q: %w", p, ErrEncodedBody)
			}
		}
	}
	return nil
}
