package rpctest

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Client is a minimal SanctumAI protocol client for tests of other
// packages: 4-byte big-endian length frames of JSON {"id","method","params"}
// (SANCTUM_PROTOCOL.md).
type Client struct {
	t       testing.TB
	c       net.Conn
	id      int
	session string
}

// Dial connects to addr (tcp) and closes the connection at cleanup.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, c: c}
}

// Call sends method with params (plus the session id once logged in) and
// returns the result, or the error code ("" on success).
func (cl *Client) Call(method string, params map[string]any) (json.RawMessage, string) {
	cl.t.Helper()
	cl.id++
	p := map[string]any{}
	if cl.session != "" {
		p["session_id"] = cl.session
	}
	for k, v := range params {
		p[k] = v
	}
	b, _ := json.Marshal(map[string]any{"id": cl.id, "method": method, "params": p})
	_ = cl.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := cl.c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)); err != nil {
		cl.t.Fatalf("%s: write: %v", method, err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(cl.c, hdr[:]); err != nil {
		cl.t.Fatalf("%s: read: %v", method, err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(cl.c, body); err != nil {
		cl.t.Fatalf("%s: read: %v", method, err)
	}
	var r struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil || string(r.ID) != fmt.Sprint(cl.id) {
		cl.t.Fatalf("%s: bad answer %q", method, body)
	}
	if r.Error != nil {
		return nil, r.Error.Code
	}
	return r.Result, ""
}

// Login authenticates as agent with its Ed25519 key (challenge-response).
func (cl *Client) Login(agent string, key ed25519.PrivateKey) {
	cl.t.Helper()
	res, code := cl.Call("authenticate", map[string]any{"agent_name": agent})
	var ch struct {
		SessionID string `json:"session_id"`
		Challenge string `json:"challenge"`
	}
	if code != "" || json.Unmarshal(res, &ch) != nil {
		cl.t.Fatalf("authenticate: %s %s", code, res)
	}
	raw, _ := hex.DecodeString(ch.Challenge)
	if _, code := cl.Call("challenge_response", map[string]any{"session_id": ch.SessionID,
		"signature": hex.EncodeToString(ed25519.Sign(key, raw))}); code != "" {
		cl.t.Fatalf("challenge_response: %s", code)
	}
	cl.session = ch.SessionID
}
