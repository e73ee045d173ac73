package proxy

import (
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/egress"
)

// Corporate egress: with egress.upstream_proxy set, every upstream
// connection (forwarded requests and tunnel rules) leaves through that
// HTTP proxy with CONNECT. The dial guard first resolves the destination
// and drops forbidden addresses as always; the CONNECT then names the
// checked IP address (not the host name), so the proxy cannot be steered to
// an address the guard did not approve (DNS rebinding). TLS to the upstream
// still verifies the host name: it runs over the tunnel. The proxy's own
// address is configuration, not agent input, and is not subject to the
// guard.

// upstreamCache keeps the parse of one policy's upstream_proxy.
type upstreamCache struct {
	p   *policy.Policy
	up  *egress.UpstreamProxy
	err error
}

// upstreamProxy returns the upstream proxy of the policy in force, or nil.
func (s *Server) upstreamProxy() *egress.UpstreamProxy {
	up, _ := s.upstreamProxyOf(s.Policy())
	return up
}

func (s *Server) upstreamProxyOf(p *policy.Policy) (*egress.UpstreamProxy, error) {
	if p == nil || p.Egress.UpstreamProxy == "" {
		return nil, nil
	}
	if c := s.ops.upstream.Load(); c != nil && c.p == p {
		return c.up, c.err
	}
	up, err := egress.ParseUpstreamProxy(p.Egress.UpstreamProxy)
	s.ops.upstream.Store(&upstreamCache{p: p, up: up, err: err})
	return up, err
}

// viaUpstreamProxy is the dialer's hook: nil, nil when no upstream proxy is
// configured.
func (s *Server) viaUpstreamProxy() (*egress.UpstreamProxy, error) {
	return s.upstreamProxyOf(s.Policy())
}
