package policy

import (
	_ "embed"
	"net/url"
	"strconv"
)

// DefaultYAML is the policy "airlock init" writes: deny every host, no
// rules, commented examples.
//
//go:embed default.yaml
var DefaultYAML []byte

// Default returns the parsed default policy.
func Default() *Policy {
	p, err := Parse("default.yaml", DefaultYAML)
	if err != nil {
		panic("policy: embedded default.yaml is invalid: " + err.Error())
	}
	return p
}

// String shows the egress section with any upstream proxy password redacted.
func (e Egress) String() string {
	return "{unmatched:" + e.Unmatched + " mode:" + e.Mode + " allow_networks:" +
		strconv.Itoa(len(e.AllowNetworks)) + " upstream_proxy:" + RedactURL(e.UpstreamProxy) + "}"
}

// GoString is String, so %#v does not print the password either.
func (e Egress) GoString() string { return e.String() }

// RedactURL returns u with any password replaced by "xxxxx", for logs and
// status pages.
func RedactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		if u == "" {
			return ""
		}
		return "[unparsable URL]"
	}
	return pu.Redacted()
}
