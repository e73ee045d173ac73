package policy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxHost bounds a host name (253) plus room for an IPv6 zone.
const maxHost = 255

// hostPattern is a compiled rule host.
type hostPattern struct {
	key      string // the exact host, or for a wildcard the suffix after "*."
	wildcard bool
}

// match reports whether the normalised host h matches.
func (hp hostPattern) match(h []byte) bool {
	if !hp.wildcard {
		return string(h) == hp.key
	}
	n := len(hp.key)
	return len(h) > n+1 && h[len(h)-n-1] == '.' && string(h[len(h)-n:]) == hp.key
}

// parseHost compiles a rule's host value: "name", "*.name", "name:port",
// "1.2.3.4[:port]", "[v6][:port]" or a bare v6 address. It returns the
// pattern, its display form (Rule.Host) and the port (0: scheme default), or
// a message saying what is wrong.
func parseHost(s string) (hostPattern, string, int, string) {
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#") {
		return hostPattern{}, "", 0, "want a host name, not a URL (put paths under paths:)"
	}
	host, port, msg := splitHostPort(strings.ToLower(s))
	if msg != "" {
		return hostPattern{}, "", 0, msg
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return hostPattern{}, "", 0, "IPv6 zones are not supported"
		}
		key := addr.String()
		return hostPattern{key: key}, key, port, ""
	}
	host = strings.TrimSuffix(host, ".")
	wild := strings.HasPrefix(host, "*.")
	name := strings.TrimPrefix(host, "*.")
	if msg := checkHostName(name); msg != "" {
		return hostPattern{}, "", 0, msg
	}
	if wild && !strings.Contains(name, ".") {
		return hostPattern{}, "", 0, "wildcard needs at least two labels after \"*.\" (e.g. \"*.example.com\")"
	}
	return hostPattern{key: name, wildcard: wild}, host, port, ""
}

// splitHostPort splits an optional ":port", keeping bare IPv6 addresses whole.
func splitHostPort(s string) (string, int, string) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, "missing \"]\" after IPv6 address"
		}
		host, rest := s[1:end], s[end+1:]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", 0, "brackets hold an IPv6 address only"
		}
		if rest == "" {
			return host, 0, ""
		}
		if rest[0] != ':' {
			return "", 0, "junk after \"]\""
		}
		port, msg := parsePort(rest[1:])
		return host, port, msg
	}
	if strings.Count(s, ":") > 1 { // a bare IPv6 address has no port
		return s, 0, ""
	}
	host, ps, found := strings.Cut(s, ":")
	if !found {
		return host, 0, ""
	}
	port, msg := parsePort(ps)
	return host, port, msg
}

func parsePort(s string) (int, string) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '+' {
		return 0, "bad port " + strconv.Quote(s) + " (want 1-65535)"
	}
	return n, ""
}

// checkHostName validates a lower-case DNS name (no wildcard).
func checkHostName(name string) string {
	if name == "" || name == "*" {
		return "want a host name such as \"api.example.com\" or \"*.example.com\" (egress.unmatched covers every other host)"
	}
	if len(name) > 253 {
		return "host name longer than 253 characters"
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return "empty label in host name"
		}
		if len(label) > 63 {
			return "host label longer than 63 characters"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c == '*':
				return "\"*\" is allowed only as the whole first label (\"*.example.com\")"
			case c >= 0x80:
				return "non-ASCII host name: write its punycode (xn--) form"
			default:
				return "bad character " + strconv.QuoteRune(rune(c)) + " in host name"
			}
		}
	}
	return ""
}

// normHost writes the matchable form of a request host into buf: lower
// case, no trailing dot, IPv6 without brackets and in canonical form. It
// returns false for a host no rule can match.
func normHost(buf *[maxHost]byte, host string) ([]byte, bool) {
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if strings.IndexByte(host, ':') >= 0 {
		addr, err := netip.ParseAddr(host)
		if err != nil {
			return nil, false
		}
		return addr.AppendTo(buf[:0]), true
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) == 0 || len(host) > len(buf) {
		return nil, false
	}
	b := buf[:len(host)]
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return b, true
}

// NormalizeHost is the one host normaliser of the request path: lower
// case, no trailing dot, IPv6 without brackets and in canonical form — the
// form rules match ([Policy.Match]), audit lines record and tunnels pin.
// It returns "" for a host no rule can match.
func NormalizeHost(host string) string {
	var buf [maxHost]byte
	h, ok := normHost(&buf, host)
	if !ok {
		return ""
	}
	return string(h)
}

// SplitTarget splits a request's "host[:port]" (brackets around IPv6 as in
// URLs) into its normalised host ([NormalizeHost]) and port, defPort when
// none is given. ok is false for a bad port or a host no rule can match.
func SplitTarget(hostport string, defPort int) (host string, port int, ok bool) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		h, port = hostport, defPort
	} else if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
		return "", -1, false
	}
	host = NormalizeHost(h)
	return host, port, host != ""
}
