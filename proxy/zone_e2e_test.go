package proxy_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostileZonedIPv6 plays an agent that names airlock's own machine
// with an IPv6 zone (issue 16, item 1): "[::1%25lo]" is loopback, but a
// zoned address falls outside every netip.Prefix, so an unguarded check
// lets it through. With egress.unmatched: tunnel (CONNECT) and with
// egress.mode: report (plain http), the listener on ::1 must receive
// nothing.
func TestHostileZonedIPv6(t *testing.T) {
	t.Parallel() // own home, own ports
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nreached")
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for name, tc := range map[string]struct {
		policy string
		probe  func(t *testing.T, proxyAddr, auth, host string) string
	}{
		"CONNECT with unmatched tunnel": {
			"version: 1\negress:\n  unmatched: tunnel\nrules: []\n", zonedConnect},
		"plain http in report mode": {
			"version: 1\negress:\n  mode: report\nrules: []\n", zonedPlainGet},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			agent := e.addAgent("bot")
			e.writePolicy(tc.policy)
			e.serve()
			for _, zone := range []string{"%25lo", "%251", "%25eth0"} {
				host := "[::1" + zone + "]:" + port
				if got := tc.probe(t, e.proxyAddr, agentAuth(agent), host); strings.Contains(got, "reached") {
					t.Errorf("%s reached the listener on ::1: %q", host, got)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := accepted.Load(); n != 0 {
			t.Errorf("listener on [::1]:%s accepted %d connections through airlock", port, n)
		}
	})
}

// zonedConnect sends CONNECT host and, if it is accepted, a request
// through the tunnel; it returns what came back.
func zonedConnect(t *testing.T, proxyAddr, auth, host string) string {
	c := rawProxyConn(t, proxyAddr)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n",
		host, host, base64.StdEncoding.EncodeToString([]byte(auth)))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "" // closed without an answer: nothing reached
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		b, _ := io.ReadAll(br)
		return resp.Status + " " + string(b)
	}
	if got := resp.Header.Get("X-Airlock-Error"); got != "EGRESS_BLOCKED" {
		t.Errorf("CONNECT %s: %s, X-Airlock-Error %q, want EGRESS_BLOCKED", host, resp.Status, got)
	}
	return resp.Status
}

// zonedPlainGet sends a plain-proxy GET http://host/ and returns the answer.
func zonedPlainGet(t *testing.T, proxyAddr, auth, host string) string {
	c := rawProxyConn(t, proxyAddr)
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\nConnection: close\r\n\r\n",
		host, host, base64.StdEncoding.EncodeToString([]byte(auth)))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("X-Airlock-Error"); got != "EGRESS_BLOCKED" {
		t.Errorf("GET http://%s/: %s, X-Airlock-Error %q, want EGRESS_BLOCKED", host, resp.Status, got)
	}
	return resp.Status + " " + string(b)
}

func rawProxyConn(t *testing.T, proxyAddr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}
