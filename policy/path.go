package policy

import (
	"errors"
	"net/url"
	"strings"
)

// UnsafePaths is a set of path features that upstreams read differently
// (Tomcat, IIS, Go's ServeMux, trailing-slash-tolerant routers). A rule
// with paths: refuses a request path that has any feature the rule does not
// opt into with unsafe_paths:.
type UnsafePaths uint8

// The path features a rule can opt into.
const (
	UnsafeEncodedSlash  UnsafePaths = 1 << iota // %2F or %5C (any case) in the path
	UnsafeBackslash                             // a raw "\"
	UnsafeSemicolon                             // ";" (raw or %3B) in a segment
	UnsafeNoncanonical                          // an escaped unreserved byte (%41 for "A") or lower-case hex (%2f)
	unsafeFeatureCount  = 4
	maxPathLen          = 16 << 10
	hexUpper            = "0123456789ABCDEF"
	pathSubDelims       = "!$&'()*+,=:@"
	slashEscape         = "%2F"
	backslashEscape     = "%5C"
	percentEscape       = "%25"
	errAlwaysRefusedFix = "send the path in its plain form"
)

// unsafeNames are the unsafe_paths values, by bit.
var unsafeNames = [unsafeFeatureCount]string{"encoded_slash", "backslash", "semicolon", "noncanonical_escapes"}

// unsafeWhat describes each feature for error messages.
var unsafeWhat = [unsafeFeatureCount]string{
	`an encoded "/" or "\" (%2F, %5C)`,
	`a "\"`,
	`a ";" in a segment`,
	`a non-canonical percent-escape (an escaped letter, digit or "-._~", or lower-case hex)`,
}

// Has reports whether every feature in f is in u.
func (u UnsafePaths) Has(f UnsafePaths) bool { return u&f == f }

// Names returns the features as written in unsafe_paths, in bit order.
func (u UnsafePaths) Names() []string {
	var out []string
	for i, n := range unsafeNames {
		if u&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String returns the features comma-separated, or "none".
func (u UnsafePaths) String() string {
	if u == 0 {
		return "none"
	}
	return strings.Join(u.Names(), ", ")
}

// parseUnsafe maps an unsafe_paths value to its bit, 0 when unknown.
func parseUnsafe(s string) UnsafePaths {
	for i, n := range unsafeNames {
		if s == n {
			return 1 << i
		}
	}
	return 0
}

// ErrBadPath is returned (wrapped in a *PathError) by [NormalizePath] and
// [Policy.Judge] for a request path airlock refuses to judge. The proxy
// answers it with 400 BAD_PATH; nothing is forwarded.
var ErrBadPath = errors.New("request path refused")

// PathError says why a path was refused. It never holds the path itself,
// which may carry a token (Telegram's /bot<token>/...).
type PathError struct {
	Rule    string      // the rule with paths: that refused it; "" when no rule can accept it
	Feature UnsafePaths // the feature the rule did not opt into; 0 when no rule can accept it
	Reason  string      // what is wrong, for the agent and the log
}

// Error returns the reason, with the rule and the opt-in that would allow it.
func (e *PathError) Error() string {
	if e.Rule == "" {
		return "request path refused: " + e.Reason
	}
	return "request path refused: " + e.Reason + " (rule " + e.Rule + " restricts paths; unsafe_paths: [" +
		e.Feature.String() + "] on it allows this)"
}

// Unwrap returns [ErrBadPath].
func (e *PathError) Unwrap() error { return ErrBadPath }

// Hint is what the agent should do next.
func (e *PathError) Hint() string {
	if e.Rule == "" {
		return errAlwaysRefusedFix
	}
	return "send the path in its plain form, or ask the operator to add unsafe_paths: [" + e.Feature.String() + "] to rule " + e.Rule
}

func badPath(reason string) error { return &PathError{Reason: reason} }

// Path is a request path as airlock judges it and as it forwards it. The
// two cannot disagree: Forward percent-decodes to exactly the bytes Judged
// stands for.
type Path struct {
	// Judged is what rules match: percent-decoded, except that "%2F", "%5C"
	// and "%25" stay escaped (upper case) so an encoded "/" or "\" is never
	// taken for a separator and "%" never starts a second decoding; a raw
	// "\" is written "%5C" too. Repeated slashes are merged.
	Judged string
	// Forward is the escaped path to send upstream (URL.RawPath; see
	// [Path.SetURL]): upper-case hex, unreserved bytes unescaped, every byte
	// Go's net/url would escape escaped, repeated slashes merged, every
	// other escape kept as the agent sent it.
	Forward string
	// Unsafe lists the features the agent's path had.
	Unsafe UnsafePaths
}

// Decoded returns Judged fully percent-decoded: the path a decoding
// upstream (Go's net/url, URL.Path) reads from Forward.
func (p Path) Decoded() string {
	if strings.IndexByte(p.Judged, '%') < 0 {
		return p.Judged
	}
	var b strings.Builder
	b.Grow(len(p.Judged))
	for i := 0; i < len(p.Judged); i++ {
		c := p.Judged[i]
		if c == '%' && i+2 < len(p.Judged) {
			b.WriteByte(unhex(p.Judged[i+1])<<4 | unhex(p.Judged[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// NormalizePath turns the request-target the agent sent (origin-form
// "/a/b?q", absolute-form "https://host/a/b?q", or only the escaped path)
// into the [Path] rules judge and the proxy forwards. The query and any
// fragment are dropped (the proxy forwards the query as it was).
//
// It refuses, with a *PathError wrapping [ErrBadPath], what no rule can
// accept: a "." or ".." segment in any spelling (raw, %2E, or hidden
// behind "\", an encoded slash or a ";" parameter), an invalid
// percent-escape, an escaped or raw control character, a path not
// starting with "/", and a path over 16 KiB. Features that some upstream
// reads differently are reported in Path.Unsafe for [Policy.Judge] to
// refuse on rules that restrict paths.
//
// It does not allocate when the path is already canonical.
func NormalizePath(target string) (Path, error) {
	raw, err := requestPath(target)
	if err != nil {
		return Path{}, err
	}
	if len(raw) > maxPathLen {
		return Path{}, badPath("path longer than 16384 bytes")
	}
	if plainPath(raw) {
		if hasDotSegment(raw) {
			return Path{}, badPath(`"." or ".." segment`)
		}
		return Path{Judged: raw, Forward: raw}, nil
	}
	p, err := normalizeSlow(raw)
	if err != nil {
		return Path{}, err
	}
	if hasDotSegment(p.Judged) {
		return Path{}, badPath(`"." or ".." segment`)
	}
	if p.Unsafe&UnsafeEncodedSlash != 0 && !hasEscapedSlash(stripPlaceholders(p.Judged)) {
		// The only escaped slashes are inside {{airlock:PATH}}
		// placeholders, which the proxy replaces whole or refuses.
		p.Unsafe &^= UnsafeEncodedSlash
	}
	return p, nil
}

// stripPlaceholders removes well-formed placeholders from a judged path:
// PlaceholderPrefix, a credential path (its "/" escaped), "}}".
func stripPlaceholders(j string) string {
	var b strings.Builder
	for {
		i := strings.Index(j, PlaceholderPrefix)
		if i < 0 {
			break
		}
		end := strings.Index(j[i:], "}}")
		if end < 0 {
			break
		}
		inner := strings.ReplaceAll(j[i+len(PlaceholderPrefix):i+end], slashEscape, "/")
		b.WriteString(j[:i])
		if !credentialRE.MatchString(inner) {
			b.WriteString(j[i : i+end+2])
		}
		j = j[i+end+2:]
	}
	b.WriteString(j)
	return b.String()
}

func hasEscapedSlash(j string) bool {
	return strings.Contains(j, slashEscape) || strings.Contains(j, backslashEscape)
}

// requestPath extracts the path from a request-target.
func requestPath(t string) (string, error) {
	if i := strings.IndexAny(t, "?#"); i >= 0 {
		t = t[:i]
	}
	if t == "" {
		return "/", nil
	}
	if t[0] == '/' {
		return t, nil
	}
	if t == "*" {
		return "", badPath(`asterisk-form "*" is not a path`)
	}
	if i := strings.Index(t, "://"); i > 0 && !strings.ContainsAny(t[:i], "/%\\") {
		rest := t[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "/", nil
		}
		auth := rest[:j]
		if k := strings.LastIndexByte(auth, ']'); k > 0 && auth[0] == '[' {
			auth = auth[k+1:] // an IPv6 literal's zone ("%25lo") is the dial guard's to refuse
		}
		if strings.ContainsAny(auth, "\\%") {
			return "", badPath("authority holds a \"\\\" or an escape")
		}
		return rest[j:], nil
	}
	return "", badPath(`path must start with "/"`)
}

// plainPath reports whether every byte of p is one that needs no work:
// unreserved, "/", or a sub-delimiter other than ";", with no "//".
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			if i > 0 && p[i-1] == '/' {
				return false
			}
			continue
		}
		if !unreserved(c) && (c == ';' || strings.IndexByte(pathSubDelims, c) < 0) {
			return false
		}
	}
	return true
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// pathBuilder writes the judged and forwarded forms side by side.
type pathBuilder struct {
	j, f  []byte
	flags UnsafePaths
}

func (b *pathBuilder) both(c byte)        { b.j, b.f = append(b.j, c), append(b.f, c) }
func (b *pathBuilder) bothStr(s string)   { b.j, b.f = append(b.j, s...), append(b.f, s...) }
func (b *pathBuilder) escapeF(c byte)     { b.f = append(b.f, '%', hexUpper[c>>4], hexUpper[c&15]) }
func (b *pathBuilder) decodedTo(c byte)   { b.j = append(b.j, c); b.escapeF(c) }
func (b *pathBuilder) lastJudged() byte   { return b.j[len(b.j)-1] }
func (b *pathBuilder) flag(f UnsafePaths) { b.flags |= f }

// normalizeSlow is NormalizePath for a path that needs rewriting.
func normalizeSlow(raw string) (Path, error) {
	b := pathBuilder{j: make([]byte, 0, len(raw)), f: make([]byte, 0, len(raw)+len(raw)/2)}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '%':
			if i+2 >= len(raw) || !ishex(raw[i+1]) || !ishex(raw[i+2]) {
				return Path{}, badPath("invalid percent-escape")
			}
			if raw[i+1] >= 'a' || raw[i+2] >= 'a' {
				b.flag(UnsafeNoncanonical)
			}
			if err := b.escaped(unhex(raw[i+1])<<4 | unhex(raw[i+2])); err != nil {
				return Path{}, err
			}
			i += 2
		case c == '/':
			if len(b.j) == 0 || b.lastJudged() != '/' {
				b.both('/')
			}
		case c == '\\':
			b.flag(UnsafeBackslash)
			b.bothStr(backslashEscape)
		case c == ';':
			b.flag(UnsafeSemicolon)
			b.both(';')
		case c < 0x20 || c == 0x7f:
			return Path{}, badPath("control character")
		case unreserved(c) || strings.IndexByte(pathSubDelims, c) >= 0:
			b.both(c)
		default: // non-ASCII, space, '"', '<', '{', '[', ...: what net/url escapes
			b.decodedTo(c)
		}
	}
	return Path{Judged: string(b.j), Forward: string(b.f), Unsafe: b.flags}, nil
}

// escaped handles the byte c the agent sent as %XX.
func (b *pathBuilder) escaped(c byte) error {
	switch {
	case c < 0x20 || c == 0x7f:
		return badPath("escaped control character")
	case unreserved(c):
		b.flag(UnsafeNoncanonical)
		b.both(c)
	case c == '/':
		b.flag(UnsafeEncodedSlash)
		b.bothStr(slashEscape)
	case c == '\\':
		b.flag(UnsafeEncodedSlash)
		b.bothStr(backslashEscape)
	case c == '%':
		b.bothStr(percentEscape)
	case c == ';':
		b.flag(UnsafeSemicolon)
		b.decodedTo(c)
	default:
		b.decodedTo(c)
	}
	return nil
}

// hasDotSegment reports whether a judged path has a "." or ".." segment,
// splitting at "/" and at the escaped "/" and "\" (which some upstreams
// decode into separators), and ignoring ";" parameters (which Tomcat
// strips): "/a/..;/b" and "/a/..%2Fb" are dot segments too.
func hasDotSegment(p string) bool {
	start := 0
	for i := 0; i <= len(p); i++ {
		sep := 0
		switch {
		case i == len(p) || p[i] == '/':
			sep = 1
		case p[i] == '%' && i+2 < len(p) && (p[i+1:i+3] == "2F" || p[i+1:i+3] == "5C"):
			sep = 3
		default:
			continue
		}
		seg := p[start:i]
		if k := strings.IndexByte(seg, ';'); k >= 0 {
			seg = seg[:k]
		}
		if seg == "." || seg == ".." {
			return true
		}
		i += sep - 1
		start = i + 1
	}
	return false
}

// altForm is the judged path as the laxest upstream reads it: escaped
// slashes and backslashes as separators, ";" parameters stripped,
// repeated slashes merged. Deny rules that opt into unsafe features match
// this form as well as the judged one.
func altForm(j string) string {
	out := make([]byte, 0, len(j))
	skip := false
	for i := 0; i < len(j); i++ {
		c := j[i]
		if c == '%' && i+2 < len(j) && (j[i+1:i+3] == "2F" || j[i+1:i+3] == "5C") {
			c, i = '/', i+2
		}
		switch {
		case c == '/':
			skip = false
			if len(out) == 0 || out[len(out)-1] != '/' {
				out = append(out, '/')
			}
		case c == ';':
			skip = true
		case !skip:
			out = append(out, c)
		}
	}
	return string(out)
}

// SetURL makes u carry the forwarded path: Path decoded, RawPath escaped,
// so net/url sends Forward byte for byte (u.EscapedPath() == Forward).
func (p Path) SetURL(u *url.URL) {
	u.Path, u.RawPath = p.Decoded(), p.Forward
}
