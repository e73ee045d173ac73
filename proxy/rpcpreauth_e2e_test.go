package proxy_test

import (
	"bufio"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The RPC door before authentication (issue 16 item 5), against the real
// `airlock serve`.

// rssKiB is VmRSS of pid from /proc/PID/status.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestRPCPreAuthMemoryBound(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	pid := e.cmd.Process.Pid
	before := rssKiB(t, pid)
	const sockets, frameLen = 64, 4 << 20
	var wg sync.WaitGroup
	conns := make([]net.Conn, sockets)
	for i := range conns {
		c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		wg.Go(func() {
			_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			buf := binary.BigEndian.AppendUint32(nil, frameLen)
			buf = append(buf, make([]byte, frameLen-1)...)
			_, _ = c.Write(buf) // cut short once airlock refuses the frame
		})
	}
	wg.Wait()
	peak := before
	for range 10 { // what stays held, sampled for a moment
		peak = max(peak, rssKiB(t, pid))
		time.Sleep(50 * time.Millisecond)
	}
	growth := (peak - before) / 1024
	t.Logf("serve RSS %d MiB before, %d MiB peak after %d keyless sockets each sent a 4 MiB frame header + 4 MiB-1 bytes: growth %d MiB",
		before/1024, peak/1024, sockets, growth)
	if growth > 50 {
		t.Fatalf("RSS grew by %d MiB, want at most 50", growth)
	}
}

func TestRPCIdleKeylessDropped(t *testing.T) {
	t.Parallel() // own home, own ports
	up := newUpstream(t, nil)
	e := newEnv(t)
	e.upCAFile = up.caFile(t)
	e.writePolicy("version: 1\nrules: []\n")
	const handshake = 2 * time.Second
	e.serve("--rpc-handshake-timeout", handshake.String())
	const sockets = 1000
	conns := make([]net.Conn, 0, sockets)
	for range sockets {
		c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v (after %d)", err, len(conns))
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte{0}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	limit := t0.Add(handshake + time.Second)
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(limit)
			_, err := io.Copy(io.Discard, c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				mu.Lock()
				open++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d idle keyless sockets: %d still open %v after the last was opened (handshake deadline %v)", sockets, open, time.Since(t0).Round(time.Millisecond), handshake)
	if open > 0 {
		t.Fatalf("%d of %d idle keyless sockets still held past the handshake deadline", open, sockets)
	}
}

func TestRPCFailedLoginsDoNotLockOutRealAgent(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	zero := strings.Repeat("00", 64)
	for i := range 7 {
		c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		res, code := rpcCall(t, c, "authenticate", map[string]any{"agent_name": "bot"})
		if code == "" {
			_, code = rpcCall(t, c, "challenge_response", map[string]any{"session_id": jsonField(res, "session_id"), "signature": zero})
		}
		if code != "AUTH_FAILED" && code != "RATE_LIMITED" {
			t.Fatalf("attempt %d without the key: %q", i, code)
		}
		c.Close()
	}
	c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, code := rpcCall(t, c, "authenticate", map[string]any{"agent_name": "bot"})
	if code != "" {
		t.Fatalf("the real bot gets no challenge after 7 failures of a client without its key: %s", code)
	}
	raw, _ := hex.DecodeString(jsonField(res, "challenge"))
	if _, code := rpcCall(t, c, "challenge_response", map[string]any{"session_id": jsonField(res, "session_id"),
		"signature": hex.EncodeToString(ed25519.Sign(agentKey(t, e, "bot"), raw))}); code != "" {
		t.Fatalf("the real bot is locked out: %s", code)
	}
}

func TestRPCOversizeFrameNeverNullID(t *testing.T) {
	t.Parallel() // own home, own ports
	e, _, _ := startInjectEnv(t, nil)
	for name, login := range map[string]bool{"authenticated": true, "before authentication": false} {
		t.Run(name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", e.proxyAddr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if login {
				rpcLogin(t, c, "bot", agentKey(t, e, "bot"))
			}
			body := `{"id": 42, "method": "use", "params": {"data": "` + strings.Repeat("x", 5<<20) + `"}}`
			go func() {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			var hdr [4]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return // closed without an answer: allowed
			}
			ans := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(br, ans); err != nil {
				t.Fatalf("partial answer: %v", err)
			}
			var r struct {
				ID json.RawMessage `json:"id"`
			}
			if json.Unmarshal(ans, &r) != nil || string(r.ID) != "42" {
				t.Fatalf("answer to an oversize frame %s: want id 42 or no answer", fmt.Sprintf("%.200s", ans))
			}
		})
	}
}
