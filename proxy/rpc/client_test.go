package rpc

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

// frameClient speaks the protocol as SANCTUM_PROTOCOL.md describes it:
// 4-byte big-endian length, JSON {"id","method","params"}; answers carry
// the same id and a result or an error object.
type frameClient struct {
	t       *testing.T
	c       net.Conn
	id      int
	session string
}

type wireError struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	Detail     string         `json:"detail"`
	Suggestion string         `json:"suggestion"`
	Context    map[string]any `json:"context"`
}

type wireResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *wireError      `json:"error"`
}

func dialClient(t *testing.T, network, addr string) *frameClient {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &frameClient{t: t, c: c}
}

func (fc *frameClient) sendRaw(payload []byte) {
	fc.t.Helper()
	buf := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	fc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fc.c.Write(append(buf, payload...)); err != nil {
		fc.t.Fatalf("write frame: %v", err)
	}
}

func (fc *frameClient) recv() (wireResponse, error) {
	fc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(fc.c, hdr[:]); err != nil {
		return wireResponse{}, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(fc.c, body); err != nil {
		return wireResponse{}, err
	}
	var r wireResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("decode %q: %w", body, err)
	}
	return r, nil
}

// call sends method with params and returns the raw answer, checking the id.
func (fc *frameClient) call(method string, params map[string]any) wireResponse {
	fc.t.Helper()
	fc.id++
	b, _ := json.Marshal(map[string]any{"id": fc.id, "method": method, "params": params})
	fc.sendRaw(b)
	r, err := fc.recv()
	if err != nil {
		fc.t.Fatalf("%s: read answer: %v", method, err)
	}
	if string(r.ID) != fmt.Sprint(fc.id) {
		fc.t.Fatalf("%s: answer id %s, want %d", method, r.ID, fc.id)
	}
	if (r.Error == nil) == (r.Result == nil) {
		fc.t.Fatalf("%s: want exactly one of result and error: %+v", method, r)
	}
	return r
}

// ok calls and decodes the result into out, failing on an error answer.
func (fc *frameClient) ok(method string, params map[string]any, out any) {
	fc.t.Helper()
	r := fc.call(method, params)
	if r.Error != nil {
		fc.t.Fatalf("%s: unexpected error %+v", method, *r.Error)
	}
	if out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			fc.t.Fatalf("%s: decode result %s: %v", method, r.Result, err)
		}
	}
}

// fail calls and checks the error code.
func (fc *frameClient) fail(method string, params map[string]any, code string) *wireError {
	fc.t.Helper()
	r := fc.call(method, params)
	if r.Error == nil {
		fc.t.Fatalf("%s: got result %s, want error %s", method, r.Result, code)
	}
	if r.Error.Code != code {
		fc.t.Fatalf("%s: error %+v, want code %s", method, *r.Error, code)
	}
	return r.Error
}

// challenge runs authenticate and returns session id and challenge bytes.
func (fc *frameClient) challenge(agent string) (string, []byte) {
	fc.t.Helper()
	var res struct {
		SessionID string `json:"session_id"`
		Challenge string `json:"challenge"`
	}
	fc.ok("authenticate", map[string]any{"agent_name": agent}, &res)
	ch, err := hex.DecodeString(res.Challenge)
	if err != nil || len(ch) != 32 || res.SessionID == "" {
		fc.t.Fatalf("bad challenge %+v", res)
	}
	return res.SessionID, ch
}

// login authenticates as agent with key and remembers the session.
func (fc *frameClient) login(agent string, key ed25519.PrivateKey) {
	fc.t.Helper()
	sid, ch := fc.challenge(agent)
	var res struct {
		Authenticated bool `json:"authenticated"`
	}
	fc.ok("challenge_response", map[string]any{"session_id": sid,
		"signature": hex.EncodeToString(ed25519.Sign(key, ch))}, &res)
	if !res.Authenticated {
		fc.t.Fatal("authenticated is false")
	}
	fc.session = sid
}

// with returns params plus the session id.
func (fc *frameClient) with(params map[string]any) map[string]any {
	out := map[string]any{"session_id": fc.session}
	for k, v := range params {
		out[k] = v
	}
	return out
}
