package proxy

import (
	"bufio"
	"crypto/tls"
	"net/http"
	"net/netip"
	"testing"

	"github.com/airlock/airlock/proxy/transparent"
)

// TestHandleTransparentDeniedTLS: a TLS client redirected to a host no
// rule allows gets the ACCESS_DENIED JSON inside TLS (a leaf for its SNI),
// as a denied CONNECT does, instead of a bare close.
func TestHandleTransparentDeniedTLS(t *testing.T) {
	s, _, _ := transparentServer(t)
	raw, done := handOver(t, s, transparent.Conn{OrigDst: netip.MustParseAddrPort("203.0.113.9:443"), ServerName: "evil.example", Agent: "bot", TLS: true})
	tc := tls.Client(raw, &tls.Config{ServerName: "evil.example", InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with the denied host: %v", err)
	}
	if cn := tc.ConnectionState().PeerCertificates[0].DNSNames; len(cn) == 0 || cn[0] != "evil.example" {
		t.Fatalf("leaf names %v, want evil.example", cn)
	}
	req, _ := http.NewRequest("GET", "https://evil.example/x", nil)
	if err := req.Write(tc); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		t.Fatalf("no answer inside TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Airlock-Error") != CodeAccessDenied {
		t.Fatalf("answer inside TLS: %d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
	waitDone(t, done)
}
