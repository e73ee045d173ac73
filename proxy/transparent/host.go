package transparent

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"strings"
)

// ErrBadRequest: the bytes are not a well-formed HTTP/1.x request head.
var ErrBadRequest = errors.New("malformed HTTP request head")

// looksHTTP reports whether b starts like an HTTP/1.x request line: an
// upper-case method token followed by a space.
func looksHTTP(b []byte) bool {
	for i, c := range b {
		switch {
		case c == ' ':
			return i > 0
		case c < 'A' || c > 'Z' || i >= 16:
			return false
		}
	}
	return len(b) < 16 // undecided: an incomplete token
}

// ParseHost returns the host (no port) an HTTP/1.x request head names:
// the Host header, or the authority of an absolute-form target when Host is
// absent. It returns errNeedMore until the blank line ending the head,
// ErrBadRequest for a malformed head or several Host headers, and "" with
// no error when the request names no host. IPv6 literals come back without
// brackets; names are lower-cased and checked like SNI names.
func ParseHost(b []byte) (string, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return "", errNeedMore
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", ErrBadRequest
	}
	var host string
	seen := false
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return "", ErrBadRequest
		}
		if strings.EqualFold(k, "host") {
			if seen {
				return "", ErrBadRequest
			}
			seen, host = true, strings.TrimSpace(v)
		}
	}
	if !seen {
		if u, err := url.Parse(parts[1]); err == nil && u.IsAbs() {
			host = u.Host
		}
	}
	if host == "" {
		return "", nil
	}
	return hostOnly(host)
}

// hostOnly strips the port and validates the name.
func hostOnly(hp string) (string, error) {
	h := hp
	if strings.HasPrefix(hp, "[") || strings.Count(hp, ":") == 1 {
		var err error
		if h, _, err = net.SplitHostPort(hp); err != nil {
			return "", ErrBadRequest
		}
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), nil
	}
	clean, ok := cleanHost(h)
	if !ok {
		return "", ErrBadRequest
	}
	return clean, nil
}
