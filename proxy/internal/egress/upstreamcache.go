package egress

import "sync/atomic"

// Corporate egress: with egress.upstream_proxy set, every upstream
// connection (forwarded requests and tunnel rules) leaves through that
// HTTP proxy with CONNECT. The dial guard first resolves the destination
// and drops forbidden addresses as always; the CONNECT then names the
// checked IP address (not the host name), so the proxy cannot be steered to
// an address the guard did not approve (DNS rebinding). TLS to the upstream
// still verifies the host name: it runs over the tunnel. The proxy's own
// address is configuration, not agent input, and is not subject to the
// guard.

// ProxyCache keeps the parse of the last upstream_proxy setting it was
// given, so the dialer does not parse the policy's URL on every dial. Its
// zero value is ready.
type ProxyCache struct {
	last atomic.Pointer[parsedProxy]
}

type parsedProxy struct {
	raw string
	up  *UpstreamProxy
	err error
}

// Parse returns the upstream proxy raw names (nil, nil for ""), parsing it
// only when it differs from the last one.
func (c *ProxyCache) Parse(raw string) (*UpstreamProxy, error) {
	if raw == "" {
		return nil, nil
	}
	if p := c.last.Load(); p != nil && p.raw == raw {
		return p.up, p.err
	}
	up, err := ParseUpstreamProxy(raw)
	c.last.Store(&parsedProxy{raw: raw, up: up, err: err})
	return up, err
}
