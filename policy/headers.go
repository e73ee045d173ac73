package policy

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var awsNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// reservedHeaders may not be injected or set statically: they frame the
// message, route it, or belong to the proxy hop.
var reservedHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Upgrade": true, "Te": true, "Trailer": true,
	"Proxy-Authorization": true, "Proxy-Authenticate": true, "Proxy-Connection": true,
}

// checkHeaderName validates a header name (an RFC 9110 token, not reserved).
func checkHeaderName(s string) string {
	if s == "" {
		return "empty header name"
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return "bad header name " + strconv.Quote(s)
		}
	}
	if c := http.CanonicalHeaderKey(s); reservedHeaders[c] || strings.HasPrefix(c, "Proxy-") {
		return "header " + strconv.Quote(s) + " is reserved"
	}
	return ""
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderText reports whether s is safe in a header value: no control
// characters other than tab.
func validHeaderText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// headers reads a rule's static headers. Values are never repeated in
// messages.
func (p *parser) headers(ctx string, n *yaml.Node, r *Rule) map[string]string {
	n = p.deref(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, ctx, "want a mapping of header: value, got %s", kind(n))
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := p.deref(n.Content[i])
		name, ok := p.str(ctx, k)
		if !ok {
			continue
		}
		kctx := ctx + "[" + strconv.Quote(name) + "]"
		canon := http.CanonicalHeaderKey(name)
		if msg := checkHeaderName(name); msg != "" {
			p.errf(k, kctx, "%s", msg)
		} else if line, dup := seen[canon]; dup {
			p.errf(k, kctx, "header set twice (first at line %d)", line)
		} else if r.Credential != "" && r.Inject.Header != "" && strings.EqualFold(name, r.Inject.Header) {
			p.errf(k, kctx, "header is the one the credential is injected into")
		}
		seen[canon] = k.Line
		if v, ok := p.str(kctx, n.Content[i+1]); ok {
			if !validHeaderText(v) {
				p.errf(p.deref(n.Content[i+1]), kctx, "value contains control characters")
			}
			out[name] = v
		}
	}
	return out
}

// parseRate parses "N/s", "N/m" or "N/h".
func parseRate(s string) (*RateLimit, string) {
	const want = "want N/s, N/m or N/h, e.g. \"60/m\""
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return nil, want
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || num[0] == '+' {
		return nil, "count must be a positive integer; " + want
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if per == 0 {
		return nil, "unit must be s, m or h; " + want
	}
	return &RateLimit{Count: n, Per: per, Burst: n}, ""
}
