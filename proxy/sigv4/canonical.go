package sigv4

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// CanonicalRequest renders the canonical request of req over the signed
// header names (lower case, sorted) and the payload hash.
func CanonicalRequest(req *http.Request, service string, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(req.Method)
	b.WriteByte('\n')
	b.WriteString(CanonicalURI(req.URL.EscapedPath(), service))
	b.WriteByte('\n')
	b.WriteString(CanonicalQuery(req.URL.RawQuery))
	b.WriteByte('\n')
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(headerValue(req, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// headerValue is the canonical value of one header: every value trimmed,
// inner runs of spaces collapsed, joined with commas in order.
func headerValue(req *http.Request, name string) string {
	if name == "host" {
		if req.Host != "" {
			return req.Host
		}
		return req.URL.Host
	}
	vals := req.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

// CanonicalURI turns the path as sent on the wire (escaped) into the
// canonical URI. For S3 the path is decoded and encoded once, never
// normalised (object keys may contain "//" or ".."). For every other
// service the wire path is normalised (dot segments and empty segments
// removed) and encoded again, which is the "double encoding" the spec asks
// for.
func CanonicalURI(wirePath, service string) string {
	if wirePath == "" {
		return "/"
	}
	if service == "s3" {
		dec, err := url.PathUnescape(wirePath)
		if err != nil {
			dec = wirePath
		}
		if !strings.HasPrefix(dec, "/") {
			dec = "/" + dec
		}
		return encode(dec, true)
	}
	return encode(normalizePath(wirePath), true)
}

// normalizePath removes "." and ".." segments and empty segments, keeping
// a trailing slash.
func normalizePath(p string) string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && strings.HasSuffix(p, "/") {
		out += "/"
	}
	return out
}

// CanonicalQuery sorts the decoded-then-encoded parameters by name, then
// value. A parameter without "=" has an empty value.
func CanonicalQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, p := range strings.Split(rawQuery, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		params = append(params, kv{encode(unescapeQuery(k), false), encode(unescapeQuery(v), false)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// unescapeQuery decodes one query component form-style ("+" is a space);
// an invalid escape is kept as it came.
func unescapeQuery(s string) string {
	d, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return d
}

// encode percent-encodes every byte except the unreserved characters
// (A-Z a-z 0-9 - _ . ~) and, when keepSlash, "/". Hex digits are upper case.
func encode(s string, keepSlash bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
