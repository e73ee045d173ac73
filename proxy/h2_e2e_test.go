package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 from the agent through `airlock serve`: ALPN, injection, the
// tunnel pin per stream, SSE, and the CONTINUATION-flood limit.

// hanging counts the upstream requests to /hang/ still open.
var hanging atomic.Int64

// h2Seen is what the h2 upstream answers: the protocol it was spoken to
// with and a digest of the Authorization it received.
type h2Seen struct {
	Proto string `json:"proto"`
	Auth  string `json:"authorization_sha256"`
	Path  string `json:"path"`
}

// h2Upstream is a TLS upstream offering h2 (httptest with EnableHTTP2).
// /sse/ streams one event per value sent on step.
func h2Upstream(t *testing.T, step <-chan string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/sse/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for ev := range step {
			fmt.Fprintf(w, "data: %s\n\n", ev)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/hang/", func(w http.ResponseWriter, r *http.Request) {
		hanging.Add(1)
		defer hanging.Add(-1)
		<-r.Context().Done() // until airlock cancels the request
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h2Seen{Proto: r.Proto, Auth: digest(r.Header.Get("Authorization")), Path: r.URL.Path})
	})
	up := httptest.NewUnstartedServer(mux)
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	return up
}

func startH2Env(t *testing.T, step <-chan string) (*env, *httptest.Server, *url.URL) {
	up := h2Upstream(t, step)
	e := newEnv(t)
	e.upCAFile = writeCAFile(t, up.Certificate())
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	e.writePolicy("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n  - name: h2\n    host: \"" +
		strings.TrimPrefix(up.URL, "https://") + "\"\n    credential: test/bearer\n")
	e.serve()
	t.Cleanup(func() { assertNoSecrets(t, "airlock logs", e.logs.String()) })
	return e, up, agent
}

// defaultClient is Go's default client (http.DefaultTransport's settings,
// ForceAttemptHTTP2 included) with airlock as its proxy.
func (e *env) defaultClient(agent *url.URL) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(e.proxyURL(agent))
	tr.TLSClientConfig = &tls.Config{RootCAs: e.airlockRoots()}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestH2DefaultClientNegotiatesH2AndIsInjected(t *testing.T) {
	t.Parallel()
	e, up, agent := startH2Env(t, nil)
	c := e.defaultClient(agent)
	for i := range 3 { // three streams, one connection
		resp, err := c.Get(up.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		var seen h2Seen
		_ = json.NewDecoder(resp.Body).Decode(&seen)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("request %d: agent side spoke %s, want HTTP/2", i, resp.Proto)
		}
		if seen.Proto != "HTTP/2.0" {
			t.Errorf("request %d: upstream saw %q, want HTTP/2.0", i, seen.Proto)
		}
		if seen.Auth != digest("Bearer "+secrets["test/bearer"]) {
			t.Errorf("request %d: upstream did not get the injected bearer", i)
		}
	}
}

// h2Tunnel opens a CONNECT tunnel to target, TLS with ALPN h2 only, and
// an x/net HTTP/2 client connection on it.
func (e *env) h2Tunnel(agent *url.URL, target string) (*tls.Conn, *http2.ClientConn) {
	e.t.Helper()
	raw, err := connectTunnel(context.Background(), e.proxyAddr, agent, target)
	if err != nil {
		e.t.Fatal(err)
	}
	host, _, _ := strings.Cut(target, ":")
	tc := tls.Client(raw, &tls.Config{RootCAs: e.airlockRoots(), ServerName: host, NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil {
		e.t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		e.t.Fatalf("ALPN = %q, want h2", p)
	}
	e.t.Cleanup(func() { tc.Close() })
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		e.t.Fatal(err)
	}
	return tc, cc
}

func TestH2AuthorityMismatchIs421OnThatStreamOnly(t *testing.T) {
	t.Parallel()
	e, up, agent := startH2Env(t, nil)
	target := strings.TrimPrefix(up.URL, "https://")
	_, cc := e.h2Tunnel(agent, target)
	do := func(authority string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "https://"+target+"/v1/x", nil)
		req.Host = authority
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf(":authority %s: %v", authority, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, port, _ := strings.Cut(target, ":")
	for _, other := range []string{"evil.example:443", "localhost:" + port, "127.0.0.2:" + port} {
		resp, body := do(other)
		if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("X-Airlock-Error") != "MISDIRECTED_REQUEST" {
			t.Errorf(":authority %s = %d %s, want 421 MISDIRECTED_REQUEST", other, resp.StatusCode, body)
		}
		if strings.Contains(body, "proto") {
			t.Errorf(":authority %s reached the upstream: %s", other, body)
		}
		// The same connection still carries a well-addressed stream.
		resp, body = do(target)
		var seen h2Seen
		_ = json.Unmarshal([]byte(body), &seen)
		if resp.StatusCode != http.StatusOK || seen.Auth != digest("Bearer "+secrets["test/bearer"]) {
			t.Errorf("stream after the 421 = %d %s", resp.StatusCode, body)
		}
	}
	if !cc.CanTakeNewRequest() {
		t.Error("the connection was closed by the 421s")
	}
}

func TestH2SSEArrivesEventByEvent(t *testing.T) {
	t.Parallel()
	step := make(chan string)
	e, up, agent := startH2Env(t, step)
	c := e.defaultClient(agent)
	resp, err := c.Get(up.URL + "/sse/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("spoke %s, want HTTP/2", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for _, ev := range []string{"one", "two", "three"} {
		// The upstream sends the next event only now: the agent must read
		// it before the stream ends or anything else is sent.
		select {
		case step <- ev:
		case <-time.After(10 * time.Second):
			t.Fatal("upstream not ready for the next event")
		}
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			_, _ = br.ReadString('\n') // the blank line ending the event
			got <- line
		}()
		select {
		case line := <-got:
			if line != "data: "+ev+"\n" {
				t.Fatalf("event %q, want %q", line, ev)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %q held back by airlock", ev)
		}
	}
	close(step)
}

// TestH2ContinuationFloodEndsTheConnection plays the CVE-2023-45288
// attacker: one HEADERS frame without END_HEADERS, then CONTINUATION
// frames forever. airlock must end the connection once the header list
// passes its limit (MaxHeaderBytes, 64 KiB), not read megabytes of headers.
func TestH2ContinuationFloodEndsTheConnection(t *testing.T) {
	t.Parallel()
	e, up, agent := startH2Env(t, nil)
	target := strings.TrimPrefix(up.URL, "https://")
	tc, _ := e.h2TunnelRaw(agent, target)
	fr := http2.NewFramer(tc, tc)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", target}, {":path", "/v1/x"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	_ = fr.WriteSettings()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true})
	pad := strings.Repeat("p", 8000)
	var sent atomic.Int64
	done := make(chan struct{})
	// The attacker sends at most 512 KiB of headers, then waits: a GOAWAY
	// can only come from a limit below that (x/net's default is 1 MiB),
	// however slowly a loaded machine reads. Timing-free.
	go func() {
		defer close(done)
		for i := 0; sent.Load() < 512<<10; i++ {
			hb.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: pad})
			if err := fr.WriteContinuation(1, false, hb.Bytes()); err != nil {
				return
			}
			sent.Add(int64(hb.Len()))
		}
	}()
	_ = tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var goaway *http2.GoAwayFrame
	var atGoaway int64
	for goaway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goaway, atGoaway = f, sent.Load()
		case *http2.HeadersFrame:
			t.Fatal("airlock dispatched the flooded stream")
		}
	}
	<-done
	if goaway == nil || goaway.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("no GOAWAY PROTOCOL_ERROR (got %v)", goaway)
	}
	t.Logf("GOAWAY after %d bytes of headers sent (the attacker stops at 512 KiB)", atGoaway)
}

// h2TunnelRaw is h2Tunnel without the client connection (raw frames).
func (e *env) h2TunnelRaw(agent *url.URL, target string) (*tls.Conn, string) {
	e.t.Helper()
	raw, err := connectTunnel(context.Background(), e.proxyAddr, agent, target)
	if err != nil {
		e.t.Fatal(err)
	}
	host, _, _ := strings.Cut(target, ":")
	tc := tls.Client(raw, &tls.Config{RootCAs: e.airlockRoots(), ServerName: host, NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { tc.Close() })
	return tc, tc.ConnectionState().NegotiatedProtocol
}

// TestH2ShutdownFinishesInFlightStreams stops `airlock serve` while an
// h2 stream is open: the stream must still deliver the rest of its events
// and end cleanly (GOAWAY, then the drain), not be cut by the exit.
func TestH2ShutdownFinishesInFlightStreams(t *testing.T) {
	t.Parallel()
	step := make(chan string)
	e, up, agent := startH2Env(t, step)
	c := e.defaultClient(agent)
	resp, err := c.Get(up.URL + "/sse/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	step <- "before"
	if line, _ := br.ReadString('\n'); line != "data: before\n" {
		t.Fatalf("first event %q", line)
	}
	e.stop() // SIGINT: airlock starts shutting down
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(e.logs.String(), `"shutting down"`) {
			return fmt.Errorf("airlock has not started shutting down")
		}
		return nil
	})
	step <- "after"
	close(step)
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("stream cut by the shutdown: %v (got %q)", err, rest)
	}
	if !strings.Contains(string(rest), "data: after\n") {
		t.Errorf("rest of the stream = %q, want the event sent during shutdown", rest)
	}
}

// TestH2RapidResetCancelsUpstreamWork plays the CVE-2023-44487 attacker
// against a path whose upstream hangs until cancelled: 100 streams are
// opened until all reached the upstream, then reset — every reset must
// cancel its upstream request; then 3000 streams are opened and reset at
// once. Nothing may be left hanging upstream, and airlock keeps serving.
func TestH2RapidResetCancelsUpstreamWork(t *testing.T) {
	t.Parallel()
	e, up, agent := startH2Env(t, nil)
	target := strings.TrimPrefix(up.URL, "https://")
	tc, _ := e.h2TunnelRaw(agent, target)
	fr := http2.NewFramer(tc, tc)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	go func() { // drain what airlock sends (settings, GOAWAY, ...)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				t.Logf("GOAWAY %v", g.ErrCode)
			}
		}
	}()
	open := func(id uint32) error {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", target}, {":path", "/hang/x"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	noneHanging := func() error {
		if h := hanging.Load(); h != 0 {
			return fmt.Errorf("%d upstream requests still open after their streams were reset", h)
		}
		return nil
	}
	const batch = 100
	for id := uint32(1); id < 2*batch; id += 2 {
		if err := open(id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, func() error {
		if n := hanging.Load(); n < batch {
			return fmt.Errorf("%d of %d streams reached the upstream", n, batch)
		}
		return nil
	})
	for id := uint32(1); id < 2*batch; id += 2 {
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, noneHanging)

	sent := 0
	for id := uint32(2*batch + 1); sent < 3000; id += 2 {
		if open(id) != nil || fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // airlock ended the connection (ENHANCE_YOUR_CALM)
		}
		sent++
	}
	t.Logf("then %d streams opened and reset at once", sent)
	waitFor(t, 20*time.Second, noneHanging)
	resp, err := e.defaultClient(agent).Get(up.URL + "/v1/after")
	if err != nil {
		t.Fatalf("airlock after the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("airlock after the flood: %d", resp.StatusCode)
	}
}
