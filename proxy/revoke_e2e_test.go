package proxy_test

import (
	"bufio"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Revocation (issue 16 item 2): within 1 s of the reload that removes or
// re-keys an agent, the connections it opened before are closed.

const revokeWithin = time.Second

// revokeUpstream serves the WebSocket echo at /x/ws and, at /x/hang, a
// response whose head is flushed and whose body never ends until the
// request is cancelled (reported on cut).
func revokeUpstream(cut chan<- struct{}) http.Handler {
	ws := wsEchoLoop(digest("Bearer " + secrets["test/bearer"]))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/x/ws" {
			ws.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "data: "+strings.Repeat("x", 4096)+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		select {
		case cut <- struct{}{}:
		default:
		}
	})
}

// wsEchoLoop is a WebSocket echo that answers every frame until the
// connection ends (wsEcho answers one).
func wsEchoLoop(wantAuth string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if digest(r.Header.Get("Authorization")) != wantAuth {
			http.Error(w, "unauthorized upgrade", http.StatusUnauthorized)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			wsAccept(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		for {
			payload, err := readFrame(brw.Reader)
			if err != nil {
				return
			}
			c.Write(frame([]byte("echo: "+string(payload)), false))
		}
	})
}

// tunnelGet sends one request on a MITM'd tunnel and reads its answer.
func tunnelGet(c net.Conn, br *bufio.Reader, host, path string) (int, seenReq, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		return 0, seenReq{}, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, seenReq{}, err
	}
	defer resp.Body.Close()
	var sr seenReq
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, seenReq{}, err
	}
	_ = json.Unmarshal(b, &sr)
	return resp.StatusCode, sr, nil
}

// closedWithin reads c until it fails and returns how long that took
// (from since), or fails the test when it stays open past limit.
func closedWithin(t *testing.T, c net.Conn, r io.Reader, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(since.Add(limit + 2*time.Second))
	_, err := io.Copy(io.Discard, r)
	took := time.Since(since)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open %v after the revocation", took)
	}
	if took > limit {
		t.Fatalf("connection closed %v after the revocation, want within %v", took, limit)
	}
	return took
}

func TestRevokeTunnelOnRotate(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	tc := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	br := bufio.NewReader(tc)
	injected := digest("Bearer " + secrets["test/bearer"])
	if st, sr, err := tunnelGet(tc, br, up.hostPort(), "/bearer/before"); err != nil || st != 200 || sr.Auth != injected {
		t.Fatalf("before rotate: %d %+v %v", st, sr, err)
	}
	e.mustRun("", "agent", "rotate", "bot")
	t0 := time.Now()
	for {
		st, sr, err := tunnelGet(tc, br, up.hostPort(), "/bearer/after")
		if err != nil {
			took := time.Since(t0)
			if took > revokeWithin {
				t.Fatalf("tunnel closed %v after rotate, want within %v", took, revokeWithin)
			}
			t.Logf("tunnel closed %v after rotate", took)
			break
		}
		if time.Since(t0) > revokeWithin {
			t.Fatalf("%v after rotate the old tunnel still serves: %d injected=%v", time.Since(t0), st, sr.Auth == injected)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 2*time.Second, func() error {
		if !strings.Contains(e.logs.String(), `"msg":"agent revoked; its open connections are closed","agent":"bot","reason":"rekeyed"`) {
			return fmt.Errorf("no revocation line with reason rekeyed")
		}
		if got := metricValue(t, e, `airlock_revocations_total{reason="rekeyed"}`); got != 1 {
			return fmt.Errorf("airlock_revocations_total{reason=rekeyed} = %v, want 1", got)
		}
		return nil
	})
}

func TestRevokeWebSocketAndInFlightCut(t *testing.T) {
	t.Parallel() // own home, own ports
	cut := make(chan struct{}, 1)
	e, up, agent := startInjectEnv(t, revokeUpstream(cut))
	ws := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	io.WriteString(ws, "GET /x/ws HTTP/1.1\r\nHost: "+up.hostPort()+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	wsr := bufio.NewReader(ws)
	resp, err := http.ReadResponse(wsr, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for i := range 2 {
		ws.Write(frame([]byte("hello"), true))
		if got, err := readFrame(wsr); err != nil || string(got) != "echo: hello" {
			t.Fatalf("echo frame %d: %q, %v", i, got, err)
		}
	}
	slow := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	io.WriteString(slow, "GET /x/hang HTTP/1.1\r\nHost: "+up.hostPort()+"\r\n\r\n")
	slowr := bufio.NewReader(slow)
	if resp, err := http.ReadResponse(slowr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("in-flight request: %v %v", resp, err)
	}

	e.mustRun("", "agent", "rm", "bot")
	t0 := time.Now()
	t.Logf("websocket closed after %v", closedWithin(t, ws, wsr, t0, revokeWithin))
	t.Logf("in-flight response cut after %v", closedWithin(t, slow, slowr, t0, revokeWithin))
	select {
	case <-cut:
	case <-time.After(revokeWithin):
		t.Errorf("the upstream request of the cut response was not cancelled")
	}
}

func TestRevokeRPCSession(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	key := agentKey(t, e, "bot")
	c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	session := rpcLogin(t, c, "bot", key)
	if _, code := rpcCall(t, c, "list", map[string]any{"session_id": session}); code != "" {
		t.Fatalf("list before rm: %s", code)
	}
	e.mustRun("", "agent", "rm", "bot")
	t0 := time.Now()
	t.Logf("rpc connection closed after %v", closedWithin(t, c, c, t0, revokeWithin))
	c2, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	res, code := rpcCall(t, c2, "authenticate", map[string]any{"agent_name": "bot"})
	if code != "" {
		return // refused at once: fine
	}
	var ch struct{ SessionID, Challenge string }
	ch.SessionID, ch.Challenge = jsonField(res, "session_id"), jsonField(res, "challenge")
	raw, _ := hex.DecodeString(ch.Challenge)
	if _, code := rpcCall(t, c2, "challenge_response", map[string]any{"session_id": ch.SessionID,
		"signature": hex.EncodeToString(ed25519.Sign(key, raw))}); code != "AUTH_FAILED" {
		t.Fatalf("login of the removed agent: code %q, want AUTH_FAILED", code)
	}
}

func TestRevokeWhenLastRuleRemoved(t *testing.T) {
	t.Parallel() // own home, own ports
	e, up, agent := startInjectEnv(t, nil)
	tc := mitmTLS(t, e, agent, up.hostPort(), "127.0.0.1")
	br := bufio.NewReader(tc)
	if st, _, err := tunnelGet(tc, br, up.hostPort(), "/bearer/a"); err != nil || st != 200 {
		t.Fatalf("before: %d %v", st, err)
	}
	// Re-judged per request: a policy that keeps only /open/** refuses
	// /bearer/** on the tunnel opened before.
	e.writePolicy(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: open
    host: "` + up.hostPort() + `"
    paths: ["/open/**"]
`)
	waitFor(t, 3*time.Second, func() error {
		st, _, err := tunnelGet(tc, br, up.hostPort(), "/bearer/b")
		if err != nil {
			t.Fatalf("tunnel closed while bot still has a rule: %v", err)
		}
		if st != http.StatusForbidden {
			return fmt.Errorf("status %d", st)
		}
		return nil
	})
	// No rule left for bot: the tunnel is closed.
	e.writePolicy(`version: 1
rules:
  - name: others
    agents: [someone-else]
    host: "` + up.hostPort() + `"
`)
	t0 := time.Now()
	d := closedWithin(t, tc, br, t0, revokeWithin+600*time.Millisecond) // + the watcher's 500 ms poll
	t.Logf("tunnel closed %v after the policy write", d)
}

// agentKey reads keys/NAME.key (hex Ed25519 seed).
func agentKey(t *testing.T, e *env, name string) ed25519.PrivateKey {
	b, err := os.ReadFile(filepath.Join(e.home, "keys", name+".key"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// rpcID numbers request frames; tests that call rpcCall run in parallel.
var rpcID atomic.Int64

// rpcCall sends one request frame on c and returns the result and the
// error code ("" on success).
func rpcCall(t *testing.T, c net.Conn, method string, params map[string]any) (json.RawMessage, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"id": rpcID.Add(1), "method": method, "params": params})
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b)))); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	c.Write(b)
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("%s: read: %v", method, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("%s: read: %v", method, err)
	}
	_ = c.SetDeadline(time.Time{})
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%s: bad answer %q", method, body)
	}
	if r.Error != nil {
		return nil, r.Error.Code
	}
	return r.Result, ""
}

// rpcLogin authenticates as agent and returns the session id.
func rpcLogin(t *testing.T, c net.Conn, agent string, key ed25519.PrivateKey) string {
	t.Helper()
	res, code := rpcCall(t, c, "authenticate", map[string]any{"agent_name": agent})
	if code != "" {
		t.Fatalf("authenticate: %s", code)
	}
	sid, ch := jsonField(res, "session_id"), jsonField(res, "challenge")
	raw, _ := hex.DecodeString(ch)
	if _, code := rpcCall(t, c, "challenge_response", map[string]any{"session_id": sid,
		"signature": hex.EncodeToString(ed25519.Sign(key, raw))}); code != "" {
		t.Fatalf("challenge_response: %s", code)
	}
	return sid
}

func jsonField(raw json.RawMessage, name string) string {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	s, _ := m[name].(string)
	return s
}

// metricValue is the value of one exact series line of /metrics (-1 when absent).
func metricValue(t *testing.T, e *env, series string) float64 {
	t.Helper()
	_, text := e.adminGet("/metrics")
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

func TestRevokeSplicedTunnelAndPlainRequest(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	cut := make(chan struct{}, 1)
	plain := httptest.NewServer(revokeUpstream(cut))
	t.Cleanup(plain.Close)
	e := newEnv(t)
	e.setSecret("test/bearer", secrets["test/bearer"])
	agent := e.addAgent("bot")
	e.writePolicy(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: pass
    host: "` + up.hostPort() + `"
    action: tunnel
  - name: plain
    host: "` + strings.TrimPrefix(plain.URL, "http://") + `"
    credential: test/bearer
    insecure_http: true
`)
	e.serve()
	t.Cleanup(func() { assertNoSecrets(t, "airlock logs", e.logs.String()) })
	// A spliced tunnel: TLS straight to the upstream through airlock.
	resp, c, _ := rawConnect(t, e.proxyAddr, up.hostPort(), agentAuth(agent))
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	tc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	br := bufio.NewReader(tc)
	if st, _, err := tunnelGet(tc, br, up.hostPort(), "/spliced"); err != nil || st != 200 {
		t.Fatalf("through the splice: %d %v", st, err)
	}
	// A plain-proxy request in flight (absolute-form http://, injected).
	pc, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	fmt.Fprintf(pc, "GET %s/x/hang HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n",
		plain.URL, strings.TrimPrefix(plain.URL, "http://"), base64.StdEncoding.EncodeToString([]byte(agentAuth(agent))))
	pbr := bufio.NewReader(pc)
	if resp, err := http.ReadResponse(pbr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("plain request: %v %v", resp, err)
	}

	e.mustRun("", "agent", "rm", "bot")
	t0 := time.Now()
	t.Logf("spliced tunnel closed after %v", closedWithin(t, tc, br, t0, revokeWithin))
	// The plain response is cut: its body ends (chunked stream broken or
	// connection closed) and the upstream request is cancelled.
	select {
	case <-cut:
		t.Logf("plain in-flight request cancelled after %v", time.Since(t0))
	case <-time.After(revokeWithin):
		t.Fatalf("the in-flight plain-proxy request was not cut within %v", revokeWithin)
	}
}
