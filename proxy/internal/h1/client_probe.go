package h1

import (
	"crypto/tls"
	"net"
)

// # Checking a TLS connection for leftovers without a deadline
//
// Before a connection goes back to the pool, nothing may follow the
// response: not in the read buffer, not decrypted in crypto/tls, not as
// records tls read ahead. Reading with a deadline in the past asks all of
// them, at the price of two deadline changes per request. A TLS
// connection whose socket is wrapped in [TLSSocket] is asked instead with
// a read the wrapper fails at once (errProbe): tls answers it from what it
// holds, or passes the failure on when it holds nothing. The wrapper also
// follows the record framing of the bytes it hands to tls, so a record
// tls holds only part of counts as a leftover too. The socket itself is
// checked when the connection is taken from the pool (socketPending).

// TLSSocket wraps c, the socket under a TLS client connection the lean
// client will use (tls.Client(TLSSocket(raw), cfg)): its pool check then
// costs no deadline changes. Any other user of the connection (net/http's
// Transport for h2) is unaffected.
func TLSSocket(c net.Conn) net.Conn { return &tlsSocket{Conn: c} }

type tlsSocket struct {
	net.Conn
	probing bool // the next Read fails with errProbe, reading nothing
	left    int  // bytes of the current record's body not yet passed on
	nh      int  // bytes of the next record's header passed on so far
	hdr     [5]byte
}

// errProbe is a temporary net.Error: tls keeps the connection usable.
var errProbe net.Error = probeError{}

type probeError struct{}

func (probeError) Error() string   { return "h1: pool check" }
func (probeError) Timeout() bool   { return true }
func (probeError) Temporary() bool { return true }

func (s *tlsSocket) NetConn() net.Conn { return s.Conn }

func (s *tlsSocket) Read(p []byte) (int, error) {
	if s.probing {
		return 0, errProbe
	}
	n, err := s.Conn.Read(p)
	s.frame(p[:n])
	return n, err
}

// frame follows the TLS record framing over b, the next bytes passed on.
func (s *tlsSocket) frame(b []byte) {
	for len(b) > 0 {
		if s.left > 0 {
			k := min(s.left, len(b))
			s.left -= k
			b = b[k:]
			continue
		}
		k := copy(s.hdr[s.nh:], b)
		s.nh += k
		b = b[k:]
		if s.nh == len(s.hdr) {
			s.left, s.nh = int(s.hdr[3])<<8|int(s.hdr[4]), 0
		}
	}
}

// atBoundary: tls was given whole records only.
func (s *tlsSocket) atBoundary() bool { return s.left == 0 && s.nh == 0 }

// probeOf returns the TLSSocket under nc, a TLS connection, if any.
func probeOf(nc net.Conn) *tlsSocket {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	s, _ := tc.NetConn().(*tlsSocket)
	return s
}
