package rpc

// Tests of the second SanctumAI dialect (package dialect) and of the strict
// sign/encrypt/decrypt params through the real door. They need the hook in
// ServeConn (server.go: handleFrame instead of handle) and the
// checkOperation call in useHandler (use.go).

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/airlock/airlock/proxy/rpc/dialect/dialecttest"
)

// rustCall sends frame byte for byte and checks the answer decodes as the
// Rust SDK's RpcResponse (types.rs:14-18) with the same id, and an error
// as its VaultError (error.rs:36-47).
func rustCall(t *testing.T, fc *frameClient, frame string, id int) wireResponse {
	t.Helper()
	fc.sendRaw([]byte(frame))
	r, err := fc.recv()
	if err != nil {
		t.Fatalf("%s: %v", frame, err)
	}
	if string(r.ID) != strconv.Itoa(id) {
		t.Fatalf("%s: id %s, want %d", frame, r.ID, id)
	}
	if r.Error != nil {
		e, _ := json.Marshal(r.Error)
		if err := dialecttest.RustShapes("VaultError", e); err != nil {
			t.Fatalf("%s: error %s: %v", frame, e, err)
		}
	} else if r.Result == nil {
		t.Fatalf("%s: neither result nor error (client.rs:116 fails)", frame)
	}
	return r
}

// TestRustFramesThroughDoor replays the Rust SDK's frames
// (dialect/testdata/rust_frames.txt, from client.rs) against the door and
// checks each answer decodes into the types.rs shape and carries what the
// canonical door gives: the same grants, values and audit.
func TestRustFramesThroughDoor(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	cases := map[string]dialecttest.FrameCase{}
	for _, tc := range dialecttest.ReadFrameCases(t, "dialect/testdata/rust_frames.txt") {
		cases[tc.Name] = tc
	}
	var sig, lease string
	run := func(name string, id int) json.RawMessage {
		t.Helper()
		tc := cases[name]
		frame := strings.NewReplacer("{{SIG}}", sig, "{{LEASE}}", lease,
			"https://api.example", h.upstream.URL).Replace(tc.Request)
		r := rustCall(t, fc, frame, id)
		if r.Error != nil {
			t.Fatalf("%s: error %+v", name, *r.Error)
		}
		if err := dialecttest.RustShapes(tc.Shape, r.Result); err != nil {
			t.Fatalf("%s: %s does not decode as %s: %v", name, r.Result, tc.Shape, err)
		}
		return r.Result
	}

	var ch struct{ Challenge string }
	json.Unmarshal(run("challenge", 1), &ch)
	chBytes, err := hex.DecodeString(ch.Challenge)
	if err != nil || len(chBytes) != 32 {
		t.Fatalf("challenge %q", ch.Challenge)
	}
	sig = hex.EncodeToString(ed25519.Sign(h.keys["bot"], chBytes))
	var auth struct {
		Authenticated bool
		SessionID     string `json:"session_id"`
	}
	json.Unmarshal(run("verify", 2), &auth)
	if !auth.Authenticated || auth.SessionID == "" {
		t.Fatalf("verify: %+v", auth)
	}

	var list []struct{ Path, Type string }
	json.Unmarshal(run("list", 3), &list)
	var paths []string
	for _, c := range list {
		paths = append(paths, c.Path)
	}
	if got := strings.Join(paths, " "); got != "api/custom api/token db/password old/key signing/key" {
		t.Errorf("list = %q", got)
	}

	var cred struct {
		Path    string
		Value   string
		LeaseID string `json:"lease_id"`
		TTL     uint64
	}
	json.Unmarshal(run("retrieve", 5), &cred)
	if cred.Path != "db/password" || cred.Value != dbSecret || cred.TTL != 30 || cred.LeaseID == "" {
		t.Errorf("retrieve: %+v", cred)
	}
	lease = cred.LeaseID
	if string(run("release", 7)) != "{}" {
		t.Error("release answered something else than {}")
	}
	if h.srv.leases.active(lease, h.clock.Now()) {
		t.Error("lease still active after lease.release")
	}

	var use struct {
		Success bool
		Output  struct {
			Status int
			Body   string
		}
	}
	out := run("use http_request", 8)
	json.Unmarshal(out, &use)
	if !use.Success || use.Output.Status != 418 || !strings.HasPrefix(use.Output.Body, "method=POST path=/v1/echo body=from-rust") {
		t.Errorf("use http_request: %s", out)
	}
	if seen := <-h.seen; seen.Get("Authorization") != "Bearer "+tokenSecret {
		t.Errorf("upstream saw %v", seen)
	}
	if strings.Contains(string(out), tokenSecret) {
		t.Error("the client saw the injected secret")
	}

	var signed struct {
		Success bool
		Output  struct{ Signature string }
	}
	json.Unmarshal(run("use sign", 9), &signed)
	mac := hmac.New(sha256.New, []byte(signSecret))
	mac.Write([]byte("payload-to-sign"))
	if !signed.Success || signed.Output.Signature != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("sign: %+v", signed)
	}

	// Same accounting as the canonical dialect: counted under its methods.
	for _, m := range []string{"authenticate", "challenge_response", "list", "retrieve", "release_lease", "use"} {
		if metricValue(t, h, "bot", m, "OK") < 1 {
			t.Errorf("%s not counted for bot", m)
		}
	}
	h.assertNoSecretsLogged()
}

// TestRustErrorsThroughDoor: refusals come back as VaultError objects the
// Rust SDK decodes, with the canonical codes; airlock's own codes, which it
// decodes as ErrorCode::Unknown, are repeated in context.airlock_code.
func TestRustErrorsThroughDoor(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	expect := func(frame string, id int, code string) *wireError {
		t.Helper()
		r := rustCall(t, fc, frame, id)
		if r.Error == nil || r.Error.Code != code {
			t.Fatalf("%s: got %s %+v, want %s", frame, r.Result, r.Error, code)
		}
		return r.Error
	}
	// No session on this connection yet.
	expect(`{"id":1,"method":"credential.list","params":{}}`, 1, CodeSessionExpired)
	// A verify with no challenge pending.
	expect(`{"id":2,"method":"auth.verify","params":{"agent":"bot","signature":"00"}}`, 2, CodeSessionExpired)
	// A challenge for bot answered with another agent's key.
	r := rustCall(t, fc, `{"id":3,"method":"auth.challenge","params":{"agent":"bot"}}`, 3)
	var ch struct{ Challenge string }
	json.Unmarshal(r.Result, &ch)
	chBytes, _ := hex.DecodeString(ch.Challenge)
	bad := hex.EncodeToString(ed25519.Sign(h.keys["other"], chBytes))
	expect(`{"id":4,"method":"auth.verify","params":{"agent":"bot","signature":"`+bad+`"}}`, 4, CodeAuthFailed)
	// The challenge was spent: even the right signature is refused now.
	good := hex.EncodeToString(ed25519.Sign(h.keys["bot"], chBytes))
	expect(`{"id":5,"method":"auth.verify","params":{"agent":"bot","signature":"`+good+`"}}`, 5, CodeSessionExpired)
	// A challenge for "other" cannot be answered as bot.
	r = rustCall(t, fc, `{"id":6,"method":"auth.challenge","params":{"agent":"other"}}`, 6)
	json.Unmarshal(r.Result, &ch)
	chBytes, _ = hex.DecodeString(ch.Challenge)
	good = hex.EncodeToString(ed25519.Sign(h.keys["bot"], chBytes))
	expect(`{"id":7,"method":"auth.verify","params":{"agent":"bot","signature":"`+good+`"}}`, 7, CodeSessionExpired)

	fc.login("bot", h.keys["bot"]) // a canonical session does not serve the dialect
	expect(`{"id":8,"method":"credential.list","params":{}}`, 8, CodeSessionExpired)

	r = rustCall(t, fc, `{"id":9,"method":"auth.challenge","params":{"agent":"bot"}}`, 9)
	json.Unmarshal(r.Result, &ch)
	chBytes, _ = hex.DecodeString(ch.Challenge)
	good = hex.EncodeToString(ed25519.Sign(h.keys["bot"], chBytes))
	rustCall(t, fc, `{"id":10,"method":"auth.verify","params":{"agent":"bot","signature":"`+good+`"}}`, 10)

	expect(`{"id":11,"method":"credential.retrieve","params":{"path":"api/token","ttl":30}}`, 11, CodeAccessDenied)
	e := expect(`{"id":12,"method":"credential.retrieve","params":{"path":"old/key","ttl":30}}`, 12, CodeCredentialExpired)
	if e.Context["airlock_code"] != CodeCredentialExpired {
		t.Errorf("context %v lacks airlock_code", e.Context)
	}
	e = expect(`{"id":13,"method":"credential.use","params":{"operation":"encrypt","params":{"plaintext":"x"},"path":"signing/key"}}`, 13, CodeInvalidRequest)
	if e.Context["param"] != "plaintext" {
		t.Errorf("context %v does not name the parameter", e.Context)
	}
	e = expect(`{"id":14,"method":"credential.list","params":{"session_id":"x"}}`, 14, CodeInvalidRequest)
	if !strings.Contains(e.Message, "params.session_id") {
		t.Errorf("message %q", e.Message)
	}
	if metricValue(t, h, "bot", "retrieve", CodeAccessDenied) != 1 {
		t.Error("dialect refusal not counted as the canonical one")
	}
	h.assertNoSecretsLogged()
}

// TestStrictOperationParams: sign, encrypt and decrypt refuse unknown or
// missing params, naming them, instead of running on an empty string (the
// Node SDK README's {plaintext}); grants and sessions are judged first.
func TestStrictOperationParams(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	cases := map[string]struct {
		path, op string
		params   map[string]any
		code     string
		param    string
	}{
		"encrypt plaintext":   {"signing/key", "encrypt", map[string]any{"plaintext": "x"}, CodeInvalidRequest, "plaintext"},
		"sign payload":        {"signing/key", "sign", map[string]any{"payload": "x"}, CodeInvalidRequest, "payload"},
		"decrypt no data":     {"signing/key", "decrypt", nil, CodeInvalidRequest, "data"},
		"extra param":         {"signing/key", "sign", map[string]any{"data": "x", "encoding": "hex"}, CodeInvalidRequest, "encoding"},
		"grant checked first": {"db/password", "encrypt", map[string]any{"plaintext": "x"}, CodeAccessDenied, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := fc.fail("use", useParamsFor(fc, tc.path, tc.op, tc.params), tc.code)
			if tc.param != "" && (e.Context["param"] != tc.param || !strings.Contains(e.Message, "params."+tc.param)) {
				t.Errorf("error %+v does not name %s", *e, tc.param)
			}
		})
	}
	var enc struct{ Ciphertext string }
	fc.ok("use", useParamsFor(fc, "signing/key", "encrypt", map[string]any{"data": ""}), &enc)
	if enc.Ciphertext == "" {
		t.Error("encrypting an explicit empty string failed")
	}
	anon := h.dial()
	anon.fail("use", map[string]any{"session_id": "nope", "path": "signing/key", "operation": "encrypt",
		"params": map[string]any{"plaintext": "x"}}, CodeSessionExpired)
}

// TestGoSocketClient drives the door with the unmodified pre-FFI Go client
// (../shared/peers/sanctum-sdk-go-socket), built into a small driver, over
// TCP and over the Unix socket.
func TestGoSocketClient(t *testing.T) {
	bin := dialecttest.BuildGoClient(t)
	h := newHarness(t, Options{})
	sockDir, err := os.MkdirTemp("", "gc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { h.srv.ServeListener(ctx, l) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	seed := func(name string) string { return hex.EncodeToString(h.keys[name].Seed()) }
	mac := hmac.New(sha256.New, []byte(signSecret))
	mac.Write([]byte("sign me"))
	sum := sha256.Sum256([]byte(dbSecret))
	for network, addr := range map[string]string{"tcp": h.addr, "unix": sock} {
		t.Run(network, func(t *testing.T) {
			out := dialecttest.RunGoClient(t, bin, dialecttest.GoClientConfig{
				Network: network, Addr: addr, Agent: "bot", Seed: seed("bot"), WrongSeed: seed("other"),
				RetrievePath: "db/password", TTL: 30, HTTPPath: "api/token", URL: h.upstream.URL + "/v1/echo",
				SignPath: "signing/key", CryptPath: "signing/key", DeniedPath: "secret/other",
			})
			var httpOut struct {
				Status int
				Body   string
			}
			json.Unmarshal(out.HTTP, &httpOut)
			var sign struct{ Signature string }
			json.Unmarshal(out.Signature, &sign)
			checks := map[string]struct{ got, want string }{
				"no auth":        {out.NoAuth, CodeSessionExpired},
				"wrong key":      {out.WrongKey, CodeAuthFailed},
				"list":           {strings.Join(out.List, " "), "api/custom api/token db/password old/key signing/key"},
				"retrieve path":  {out.Retrieve.Path, "db/password"},
				"retrieve value": {out.Retrieve.ValueSHA256, hex.EncodeToString(sum[:])},
				"value a string": {strconv.FormatBool(out.Retrieve.ValueIsJSON), "true"},
				"retrieve ttl":   {strconv.FormatUint(out.Retrieve.TTL, 10), "30"},
				"lease":          {strconv.FormatBool(out.Retrieve.LeaseSet), "true"},
				"release":        {out.Release, ""},
				"unknown lease":  {out.UnknownLease, CodeLeaseExpired},
				"http success":   {strconv.FormatBool(out.HTTPSuccess), "true"},
				"http status":    {strconv.Itoa(httpOut.Status), "418"},
				"signature":      {sign.Signature, base64.StdEncoding.EncodeToString(mac.Sum(nil))},
				"decrypted":      {out.Decrypted, "round trip ✓"},
				"plaintext":      {out.Plaintext, "INVALID_REQUEST: encrypt: unknown parameter params.plaintext (want data)"},
				"denied":         {out.Denied, CodeAccessDenied},
			}
			for name, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", name, c.got, c.want)
				}
			}
			if !strings.HasPrefix(httpOut.Body, "method=POST path=/v1/echo body=from-go-client") {
				t.Errorf("http body %q", httpOut.Body)
			}
			if seen := <-h.seen; seen.Get("Authorization") != "Bearer "+tokenSecret || seen.Get("X-Test") != "1" {
				t.Errorf("upstream saw %v", seen)
			}
			if strings.Contains(out.Raw, tokenSecret) || strings.Contains(out.Raw, dbSecret) {
				t.Error("driver output holds a secret")
			}
		})
	}
	h.assertNoSecretsLogged()
}
