package rpc

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"
)

func TestAuthenticate(t *testing.T) {
	h := newHarness(t, Options{})
	wrongKey := ed25519.NewKeyFromSeed(make([]byte, 32))
	cases := map[string]struct {
		agent string
		key   ed25519.PrivateKey
		code  string // empty: success
	}{
		"registered agent":   {"bot", h.keys["bot"], ""},
		"wrong key":          {"bot", wrongKey, CodeAuthFailed},
		"unknown agent":      {"nobody", wrongKey, CodeAuthFailed},
		"disabled agent":     {"off", h.keys["off"], CodeAuthFailed},
		"other agent's key":  {"other", h.keys["bot"], CodeAuthFailed},
		"second agent works": {"other", h.keys["other"], ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fc := h.dial()
			sid, ch := fc.challenge(tc.agent)
			params := map[string]any{"session_id": sid, "signature": hex.EncodeToString(ed25519.Sign(tc.key, ch))}
			if tc.code == "" {
				fc.ok("challenge_response", params, nil)
				fc.session = sid
				fc.ok("list", fc.with(nil), nil)
				return
			}
			e := fc.fail("challenge_response", params, tc.code)
			if e.Message != "authentication failed" {
				t.Errorf("message %q reveals more than a failure", e.Message)
			}
			// The failed session is gone.
			fc.session = sid
			fc.fail("list", fc.with(nil), CodeSessionExpired)
		})
	}
}

func TestAuthRequestErrors(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	cases := map[string]struct {
		method string
		params map[string]any
		code   string
	}{
		"no agent name":           {"authenticate", map[string]any{}, CodeInvalidRequest},
		"agent name wrong type":   {"authenticate", map[string]any{"agent_name": 7}, CodeInvalidRequest},
		"unknown session":         {"challenge_response", map[string]any{"session_id": "nope", "signature": "00"}, CodeSessionExpired},
		"list without session":    {"list", map[string]any{}, CodeSessionExpired},
		"use with bogus session":  {"use", map[string]any{"session_id": "x", "path": "api/token", "operation": "sign"}, CodeSessionExpired},
		"release unauthenticated": {"release_lease", map[string]any{"lease_id": "x"}, CodeSessionExpired},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) { fc.fail(tc.method, tc.params, tc.code) })
	}
}

func TestChallengeSingleUse(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	sid, ch := fc.challenge("bot")
	params := map[string]any{"session_id": sid, "signature": hex.EncodeToString(ed25519.Sign(h.keys["bot"], ch))}
	fc.ok("challenge_response", params, nil)
	fc.fail("challenge_response", params, CodeSessionExpired)

	// A failed answer consumes the challenge too.
	sid, ch = fc.challenge("bot")
	bad := map[string]any{"session_id": sid, "signature": "zz"}
	fc.fail("challenge_response", bad, CodeAuthFailed)
	params = map[string]any{"session_id": sid, "signature": hex.EncodeToString(ed25519.Sign(h.keys["bot"], ch))}
	fc.fail("challenge_response", params, CodeSessionExpired)
}

func TestChallengeExpires(t *testing.T) {
	h := newHarness(t, Options{ChallengeTTL: time.Minute})
	fc := h.dial()
	sid, ch := fc.challenge("bot")
	h.clock.Add(time.Minute)
	fc.fail("challenge_response", map[string]any{"session_id": sid,
		"signature": hex.EncodeToString(ed25519.Sign(h.keys["bot"], ch))}, CodeSessionExpired)
}

func TestSessionBoundToConnection(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	other := h.dial()
	other.session = fc.session
	other.fail("list", other.with(nil), CodeSessionExpired)
}

func TestSessionExpires(t *testing.T) {
	h := newHarness(t, Options{SessionTTL: 10 * time.Minute})
	fc := h.bot()
	h.clock.Add(10*time.Minute - time.Second)
	fc.ok("list", fc.with(nil), nil)
	h.clock.Add(time.Second)
	fc.fail("list", fc.with(nil), CodeSessionExpired)
	// Re-authenticating on the same connection works.
	fc.login("bot", h.keys["bot"])
	fc.ok("list", fc.with(nil), nil)
}

func TestSessionEndsWhenAgentChanges(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	d := h.vaultData()
	d.Agents["bot"].Disabled = true
	h.b.data.Store(d)
	fc.fail("list", fc.with(nil), CodeSessionExpired)
}

func TestAuthRateLimited(t *testing.T) {
	h := newHarness(t, Options{})
	wrong := ed25519.NewKeyFromSeed(make([]byte, 32))
	attempt := func(fc *frameClient) string {
		sid, ch := fc.challenge("bot")
		r := fc.call("challenge_response", map[string]any{"session_id": sid,
			"signature": hex.EncodeToString(ed25519.Sign(wrong, ch))})
		if r.Error == nil {
			t.Fatalf("a wrong signature was accepted")
		}
		return r.Error.Code
	}
	// Failures spread over connections from one address are charged to
	// that address: past its burst, wrong signatures get RATE_LIMITED.
	var last string
	for range 4*authBurst + 1 {
		last = attempt(h.dial())
	}
	if last != CodeRateLimited {
		t.Errorf("after %d failures from one address: %s, want RATE_LIMITED", 4*authBurst+1, last)
	}
	// The holder of the key is never locked out by them: it gets a
	// challenge and its correct signature is accepted.
	h.bot()
	h.dial().login("bot", h.keys["bot"])
}

func TestAuthRateLimitedPerConnection(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	wrong := ed25519.NewKeyFromSeed(make([]byte, 32))
	names := []string{"nobody1", "nobody2", "nobody3", "nobody4", "nobody5"}
	for _, n := range names {
		sid, ch := fc.challenge(n)
		fc.fail("challenge_response", map[string]any{"session_id": sid,
			"signature": hex.EncodeToString(ed25519.Sign(wrong, ch))}, CodeAuthFailed)
	}
	fc.fail("authenticate", map[string]any{"agent_name": "bot"}, CodeRateLimited)
	// A fresh connection for a registered agent is fine.
	h.bot()
}
