package proxy

import "testing"

// Test helpers shared with the external proxy_test package.

// NewTestConnectProxy starts the tiny CONNECT proxy of upstreamproxy_test.go
// (a corporate proxy stand-in); wantAuth is the Proxy-Authorization it
// requires ("" for none).
func NewTestConnectProxy(t *testing.T, wantAuth string) *connectProxy {
	return newConnectProxy(t, wantAuth)
}

// Addr is the proxy's listen address.
func (p *connectProxy) Addr() string { return p.l.Addr().String() }

// Seen returns the CONNECT targets received so far.
func (p *connectProxy) Seen() []string { return p.seen() }
