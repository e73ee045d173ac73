package rpc

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"testing"
)

func useParamsFor(fc *frameClient, path, op string, params map[string]any) map[string]any {
	p := fc.with(map[string]any{"path": path, "operation": op})
	if params != nil {
		p["params"] = params
	}
	return p
}

type httpResult struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func TestUseHTTPRequest(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	base := h.upstream.URL
	var res httpResult
	fc.ok("use", useParamsFor(fc, "api/token", "http_request", map[string]any{
		"method": "POST", "url": base + "/v1/chat?x=1", "headers": map[string]any{"Content-Type": "text/plain"},
		"body": "hello", "header_type": "bearer",
	}), &res)
	if res.Status != 418 || res.Headers["X-Upstream"] != "yes" {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasPrefix(res.Body, "method=POST path=/v1/chat body=hello auth=") {
		t.Fatalf("body %q", res.Body)
	}
	// The upstream saw the injected credential, the agent sees it scrubbed.
	seen := <-h.seen
	if seen.Get("Authorization") != "Bearer "+tokenSecret || seen.Get("Content-Type") != "text/plain" {
		t.Fatalf("upstream headers %v", seen)
	}
	if strings.Contains(res.Body, tokenSecret) || strings.Contains(res.Headers["X-Echo"], tokenSecret) {
		t.Fatalf("secret echoed back to the agent: %+v", res)
	}

	cases := map[string]struct {
		path   string
		params map[string]any
		code   string
	}{
		"header_type conflicts with rule": {"api/token", map[string]any{"url": base + "/v1/x", "header_type": "api_key"}, CodeInvalidRequest},
		"custom header name conflicts":    {"api/custom", map[string]any{"url": base + "/custom/x", "header_type": "custom", "header_name": "X-Other"}, CodeInvalidRequest},
		"path outside every rule":         {"api/token", map[string]any{"url": base + "/admin"}, CodeAccessDenied},
		"rule binds another credential":   {"api/custom", map[string]any{"url": base + "/v1/x"}, CodeAccessDenied},
		"no use grant":                    {"db/password", map[string]any{"url": base + "/v1/x"}, CodeAccessDenied},
		"relative url":                    {"api/token", map[string]any{"url": "/v1/x"}, CodeInvalidRequest},
		"ftp url":                         {"api/token", map[string]any{"url": "ftp://127.0.0.1/v1/x"}, CodeInvalidRequest},
		"url with user info":              {"api/token", map[string]any{"url": "https://u:p@127.0.0.1/v1/x"}, CodeInvalidRequest},
		"bad method":                      {"api/token", map[string]any{"url": base + "/v1/x", "method": "GE T"}, CodeInvalidRequest},
		"header injection":                {"api/token", map[string]any{"url": base + "/v1/x", "headers": map[string]any{"X-A": "a\r\nX-B: b"}}, CodeInvalidRequest},
		"headers wrong type":              {"api/token", map[string]any{"url": base + "/v1/x", "headers": []int{1}}, CodeInvalidRequest},
		"expired credential":              {"old/key", map[string]any{"url": base + "/v1/x"}, CodeCredentialExpired},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fc.fail("use", useParamsFor(fc, tc.path, "http_request", tc.params), tc.code)
		})
	}
	t.Run("custom injection matches", func(t *testing.T) {
		fc.ok("use", useParamsFor(fc, "api/custom", "http_request", map[string]any{
			"url": base + "/custom/x", "header_type": "custom", "header_name": "x-custom-key"}), &res)
		if seen := <-h.seen; seen.Get("X-Custom-Key") != customSecret {
			t.Fatalf("upstream headers %v", seen)
		}
	})
	h.assertNoSecretsLogged()
}

func TestUseHTTPHeader(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	var res struct {
		Name  string `json:"header_name"`
		Value string `json:"header_value"`
	}
	fc.ok("use", useParamsFor(fc, "api/token", "http_header", map[string]any{"header_type": "bearer"}), &res)
	if res.Name != "Authorization" || res.Value != "Bearer "+tokenSecret {
		t.Fatalf("header %+v", res)
	}
	fc.ok("use", useParamsFor(fc, "api/custom", "http_header", nil), &res)
	if res.Name != "X-Custom-Key" || res.Value != customSecret {
		t.Fatalf("header %+v", res)
	}
	fc.fail("use", useParamsFor(fc, "api/token", "http_header", map[string]any{"header_type": "basic"}), CodeInvalidRequest)
	// signing/* has sign but not http_header.
	fc.fail("use", useParamsFor(fc, "signing/key", "http_header", nil), CodeAccessDenied)
	// db/* has retrieve; http_header still needs its own grant.
	fc.fail("use", useParamsFor(fc, "db/password", "http_header", nil), CodeAccessDenied)
	if n := h.logs.FilterField(fieldString("operation", "http_header")).FilterField(fieldString("code", "OK")).Len(); n != 2 {
		t.Errorf("%d ok http_header lines, want 2", n)
	}
	for _, e := range h.logs.FilterField(fieldString("operation", "http_header")).FilterField(fieldString("code", "OK")).All() {
		if e.Level.String() != "warn" {
			t.Errorf("http_header logged at %s, want warn", e.Level)
		}
	}
	h.assertNoSecretsLogged()
}

func TestUseSign(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	mac := func(newHash func() ([]byte, error)) string {
		b, _ := newHash()
		return base64.StdEncoding.EncodeToString(b)
	}
	sha256Sig := mac(func() ([]byte, error) {
		m := hmac.New(sha256.New, []byte(signSecret))
		m.Write([]byte("payload ✓"))
		return m.Sum(nil), nil
	})
	sha512Sig := mac(func() ([]byte, error) {
		m := hmac.New(sha512.New, []byte(signSecret))
		m.Write([]byte("payload ✓"))
		return m.Sum(nil), nil
	})
	cases := map[string]struct {
		path   string
		params map[string]any
		want   string
		code   string
	}{
		"hmac-sha256":           {"signing/key", map[string]any{"algorithm": "hmac-sha256", "data": "payload ✓"}, sha256Sig, ""},
		"default algorithm":     {"signing/key", map[string]any{"data": "payload ✓"}, sha256Sig, ""},
		"hmac-sha512":           {"signing/key", map[string]any{"algorithm": "HMAC-SHA512", "data": "payload ✓"}, sha512Sig, ""},
		"use grant covers sign": {"api/token", map[string]any{"data": "x"}, "", ""},
		"unknown algorithm":     {"signing/key", map[string]any{"algorithm": "md5", "data": "x"}, "", CodeInvalidRequest},
		"retrieve grant only":   {"db/password", map[string]any{"data": "x"}, "", CodeAccessDenied},
		"not granted":           {"secret/other", map[string]any{"data": "x"}, "", CodeAccessDenied},
		"granted but absent":    {"signing/none", map[string]any{"data": "x"}, "", CodeCredentialNotFound},
		"data wrong type":       {"signing/key", map[string]any{"data": 5}, "", CodeInvalidRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := useParamsFor(fc, tc.path, "sign", tc.params)
			if tc.code != "" {
				fc.fail("use", p, tc.code)
				return
			}
			var res struct {
				Signature string `json:"signature"`
			}
			fc.ok("use", p, &res)
			if tc.want != "" && res.Signature != tc.want {
				t.Fatalf("signature %s, want %s", res.Signature, tc.want)
			}
		})
	}
}

func TestUseEncryptDecrypt(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	var enc struct {
		Ciphertext string `json:"ciphertext"`
	}
	var dec struct {
		Plaintext string `json:"plaintext"`
	}
	const msg = "attack at dawn ✓"
	fc.ok("use", useParamsFor(fc, "signing/key", "encrypt", map[string]any{"data": msg}), &enc)
	if strings.Contains(enc.Ciphertext, msg) {
		t.Fatal("ciphertext holds the plaintext")
	}
	fc.ok("use", useParamsFor(fc, "signing/key", "decrypt", map[string]any{"data": enc.Ciphertext}), &dec)
	if dec.Plaintext != msg {
		t.Fatalf("plaintext %q", dec.Plaintext)
	}
	var again struct {
		Ciphertext string `json:"ciphertext"`
	}
	fc.ok("use", useParamsFor(fc, "signing/key", "encrypt", map[string]any{"data": msg}), &again)
	if again.Ciphertext == enc.Ciphertext {
		t.Fatal("two encryptions gave the same ciphertext (nonce reuse)")
	}

	raw, _ := base64.StdEncoding.DecodeString(enc.Ciphertext)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	cases := map[string]struct {
		path, data string
	}{
		"tampered":             {"signing/key", base64.StdEncoding.EncodeToString(flipped)},
		"truncated":            {"signing/key", base64.StdEncoding.EncodeToString(raw[:20])},
		"not base64":           {"signing/key", "%%%"},
		"empty":                {"signing/key", ""},
		"other credential key": {"api/token", enc.Ciphertext},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := fc.fail("use", useParamsFor(fc, tc.path, "decrypt", map[string]any{"data": tc.data}), CodeInvalidRequest)
			if e.Message != "decryption failed" {
				t.Errorf("message %q", e.Message)
			}
		})
	}
	fc.fail("use", useParamsFor(fc, "db/password", "encrypt", map[string]any{"data": "x"}), CodeAccessDenied)
	fc.fail("use", useParamsFor(fc, "signing/key", "rot13", nil), CodeInvalidRequest)
	fc.fail("use", fc.with(map[string]any{"path": "signing/key", "operation": "sign", "params": "str"}), CodeInvalidRequest)
}
