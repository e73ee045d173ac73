package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock/airlock/certs"
)

// An agent on this host gets classical key exchange on its hop (loopback
// never leaves the host: certs.Cache.LocalTLSConfig), and airlock's own
// connection to the upstream keeps Go's post-quantum default.
func TestAgentHopKeyExchange(t *testing.T) {
	var upCurve atomic.Uint32
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		upCurve.Store(uint32(r.TLS.CurveID))
		_, _ = io.WriteString(w, "ok")
	})
	tc, br := e.tunnel(t)
	if got := tc.ConnectionState().CurveID; got != tls.X25519 {
		t.Fatalf("agent hop over loopback: key exchange %v, want X25519", got)
	}
	_, _ = io.WriteString(tc, e.head("GET", "/x"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	if got := tls.CurveID(upCurve.Load()); got != tls.X25519MLKEM768 {
		t.Fatalf("upstream hop: key exchange %v, want X25519MLKEM768", got)
	}
}

// Only a loopback peer gets the local config; any other address (an
// agent on another host of a fleet or a cluster) gets the default.
func TestAgentTLSConfigChoice(t *testing.T) {
	ca, err := certs.NewCA("choice", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := certs.NewCache(ca, 10)
	local, usual := c.LocalTLSConfig("h"), c.TLSConfig("h")
	for _, tc := range []struct {
		addr net.Addr
		want *tls.Config
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, local},
		{&net.TCPAddr{IP: net.IPv4(127, 9, 9, 9), Port: 5000}, local},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, local},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 5000}, local},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5000}, usual},
		{&net.TCPAddr{IP: net.ParseIP("fd00::7"), Port: 5000}, usual},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, local},
		{nil, usual},
	} {
		if got := agentTLSConfig(c, "h", tc.addr); got != tc.want {
			t.Errorf("%v: got the %s config", tc.addr, map[bool]string{true: "local", false: "usual"}[got == local])
		}
	}
}
