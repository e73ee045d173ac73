package isolate

import (
	"bufio"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/transparent"
)

// TestForwardCONNECT: the hand-off sends CONNECT name:port with the run's
// credential; an expired credential sends nothing.
func TestForwardCONNECT(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *http.Request, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err == nil {
				got <- req
				c.Write([]byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"))
			}
			c.Close()
		}
	}()
	cases := map[string]struct {
		cred Credential
		want bool
	}{
		"valid":   {cred: Credential{Agent: "bot", Token: "tok", ExpiresAt: time.Now().Add(time.Hour)}, want: true},
		"expired": {cred: Credential{Agent: "bot", Token: "tok", ExpiresAt: time.Now().Add(-time.Second)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			h := ForwardCONNECT(ln.Addr().String(), tc.cred, nil)
			h(context.Background(), &transparent.Conn{Conn: b, OrigDst: netip.MustParseAddrPort("198.18.0.1:443"), ServerName: "api.example.test"})
			select {
			case req := <-got:
				if !tc.want {
					t.Fatalf("expired credential still sent %s %s", req.Method, req.Host)
				}
				wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("bot:tok"))
				if req.Method != http.MethodConnect || req.Host != "api.example.test:443" || req.Header.Get("Proxy-Authorization") != wantAuth {
					t.Fatalf("got %s %s auth %q", req.Method, req.Host, req.Header.Get("Proxy-Authorization"))
				}
			default:
				if tc.want {
					t.Fatal("no CONNECT reached the proxy")
				}
			}
		})
	}
}
