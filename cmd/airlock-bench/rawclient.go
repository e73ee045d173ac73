package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// rawAgent opens MITM'd tunnels by hand (CONNECT, TLS, requests written
// and read on the connection): the scale and soak commands hold thousands
// of connections, and an http.Transport each would measure the client.
type rawAgent struct {
	proxy  string // host:port
	auth   string // Proxy-Authorization value
	roots  *x509.CertPool
	source []net.IP // local addresses to dial from, in turn (127.0.0.x: more ports)
}

func newRawAgent(proxyURL *url.URL, roots *x509.CertPool, sources int) *rawAgent {
	pass, _ := proxyURL.User.Password()
	a := &rawAgent{proxy: proxyURL.Host, roots: roots,
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(proxyURL.User.Username()+":"+pass))}
	for i := range max(1, sources) {
		a.source = append(a.source, net.ParseIP(fmt.Sprintf("127.0.%d.%d", 10+i/250, i%250+1)))
	}
	return a
}

// tunnel is one agent connection through the proxy to host.
type tunnel struct {
	c  *tls.Conn
	br *bufio.Reader
}

// open dials the proxy (from the i-th source address), sends CONNECT host
// and runs the TLS handshake with the proxy's leaf.
func (a *rawAgent) open(i int, host string) (*tunnel, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: a.source[i%len(a.source)]}}
	c, err := d.Dial("tcp", a.proxy)
	if err != nil {
		return nil, fmt.Errorf("dial proxy: %w", err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n", host, host, a.auth); err != nil {
		c.Close()
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		c.Close()
		if err == nil {
			err = fmt.Errorf("status %s", resp.Status)
		}
		return nil, fmt.Errorf("CONNECT: %w", err)
	}
	h, _, _ := net.SplitHostPort(host)
	tc := tls.Client(c, &tls.Config{RootCAs: a.roots, ServerName: h, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS with the proxy: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	return &tunnel{c: tc, br: bufio.NewReaderSize(tc, 1024)}, nil
}

// get sends GET path and returns the response (body unread).
func (t *tunnel) get(host, path string, extra ...string) (*http.Response, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(t.c, req+"\r\n"); err != nil {
		return nil, err
	}
	return http.ReadResponse(t.br, &http.Request{Method: http.MethodGet})
}

// getAll sends GET path, reads the body and checks the status.
func (t *tunnel) getAll(host, path string, want int) error {
	resp, err := t.get(host, path)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil && resp.StatusCode != want {
		err = fmt.Errorf("GET %s: status %d (%s), want %d", path, resp.StatusCode, resp.Header.Get("X-Airlock-Error"), want)
	}
	return err
}

func (t *tunnel) close() { _ = t.c.Close() }
