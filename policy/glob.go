package policy

import (
	"path"
	"strings"
)

// glob is a compiled slash-separated pattern: in a segment "*" matches any
// run of characters except "/"; a whole segment "**" matches zero or more
// segments. Used for rule paths and grant credential paths.
type glob struct {
	segs []segment
}

type segment struct {
	text  string
	star  bool // text contains "*"
	dstar bool // the segment is "**"
}

// compileGlob compiles pattern. Paths pass rooted=true (leading "/"
// required); credential globs pass false (no leading "/").
func compileGlob(pattern string, rooted bool) (glob, string) {
	body := pattern
	if rooted {
		if !strings.HasPrefix(pattern, "/") {
			return glob{}, "path must start with \"/\""
		}
		body = pattern[1:]
	} else if pattern == "" || strings.HasPrefix(pattern, "/") || strings.HasSuffix(pattern, "/") {
		return glob{}, "want a credential path or glob such as \"openai/*\""
	}
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; c < 0x21 || c == 0x7f {
			return glob{}, "control characters and spaces are not allowed"
		}
	}
	if rooted && strings.ContainsAny(pattern, "?#") {
		return glob{}, "paths match the path only, not the query or fragment"
	}
	parts := strings.Split(body, "/")
	g := glob{segs: make([]segment, len(parts))}
	for i, s := range parts {
		switch {
		case s == "**":
			g.segs[i] = segment{dstar: true}
		case strings.Contains(s, "**"):
			return glob{}, "\"**\" must be a whole segment (\"/a/**/b\")"
		default:
			g.segs[i] = segment{text: s, star: strings.Contains(s, "*")}
		}
	}
	return g, ""
}

// nextSeg returns the segment of p starting at off and the offset of the
// one after it (len(p)+1 when there is none).
func nextSeg(p string, off int) (string, int) {
	if i := strings.IndexByte(p[off:], '/'); i >= 0 {
		return p[off : off+i], off + i + 1
	}
	return p[off:], len(p) + 1
}

// match reports whether p matches. A leading "/" on p is skipped. It
// backtracks only to the last "**", like the classic wildcard matcher, so it
// is linear in practice and never allocates.
func (g *glob) match(p string, fold bool) bool {
	pos := 0
	if strings.HasPrefix(p, "/") {
		pos = 1
	}
	pi, starPi, starPos := 0, -1, 0
	for pos <= len(p) {
		if pi < len(g.segs) && g.segs[pi].dstar {
			starPi, starPos = pi, pos
			pi++
			continue
		}
		if pi < len(g.segs) {
			seg, next := nextSeg(p, pos)
			if g.segs[pi].match(seg, fold) {
				pi, pos = pi+1, next
				continue
			}
		}
		if starPi < 0 {
			return false
		}
		_, starPos = nextSeg(p, starPos)
		pi, pos = starPi+1, starPos
	}
	for pi < len(g.segs) && g.segs[pi].dstar {
		pi++
	}
	return pi == len(g.segs)
}

func (s *segment) match(seg string, fold bool) bool {
	switch {
	case !s.star && fold:
		return strings.EqualFold(s.text, seg)
	case !s.star:
		return s.text == seg
	}
	return matchStar(s.text, seg, fold)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchStar matches seg against pattern where "*" is any run of bytes.
func matchStar(pattern, seg string, fold bool) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(seg) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pattern) && (pattern[pi] == seg[si] || fold && lower(pattern[pi]) == lower(seg[si])):
			pi, si = pi+1, si+1
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// CleanPath normalises a request path for matching, with path.Clean
// semantics: "." and ".." segments resolved, repeated slashes collapsed, a
// leading "/" ensured. A trailing slash is kept; "" becomes "/". It does
// not allocate when p is already clean.
//
// The proxy matches rules against CleanPath(r.URL.Path), so a rule for
// "/v1/**" cannot be reached by "/v1/../admin".
func CleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if c == "/" || p[len(p)-1] != '/' {
		return c
	}
	if len(p) == len(c)+1 && p[:len(c)] == c {
		return p
	}
	return c + "/"
}

// compilePathGlob compiles a rule path in the judged form [NormalizePath]
// produces ("%41" is "A", "%2f" is "%2F"), and also without its trailing
// slash, for deny rules' sake (match never uses that variant otherwise:
// see [Rule.matchPath]).
func compilePathGlob(s string) ([]glob, string) {
	if _, msg := compileGlob(s, true); msg != "" {
		return nil, msg
	}
	np, err := normalizeSlow(s)
	if err != nil {
		return nil, err.(*PathError).Reason
	}
	if hasDotSegment(np.Judged) {
		return nil, "\".\" and \"..\" segments never match: airlock refuses such paths"
	}
	g, msg := compileGlob(np.Judged, true)
	if msg != "" {
		return nil, msg
	}
	return []glob{g}, ""
}

// trimmedVariants compiles each path that ends in "/" without it, so a
// deny of "/v1/x/" also meets "/v1/x".
func trimmedVariants(paths []string) []glob {
	var out []glob
	for _, s := range paths {
		if t := strings.TrimSuffix(s, "/"); t != s && t != "" {
			if g, msg := compilePathGlob(t); msg == "" {
				out = append(out, g...)
			}
		}
	}
	return out
}
