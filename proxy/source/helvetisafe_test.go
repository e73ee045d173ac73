package source

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

func buildCache(t testing.TB, def *vault.SourceDef, o *observed, clk *clock) *Cache {
	t.Helper()
	src, opts, err := Build(def)
	if err != nil {
		t.Fatal(err)
	}
	if hs, ok := src.(*HelvetiSafe); ok && clk != nil {
		hs.cfg.Now = clk.Now
	}
	if kv, ok := src.(*KV); ok && clk != nil {
		kv.cfg.Now = clk.Now
	}
	if clk != nil {
		opts.Now = clk.Now
	}
	var c *Cache
	if o != nil {
		c = NewCache(def.Name, src, opts, o.m, o.log)
	} else {
		c = NewCache(def.Name, src, opts, nil, nil)
	}
	t.Cleanup(c.Close)
	return c
}

// TestHelvetiSafeModes fetches and decrypts a secret with both auth modes
// (OAuth2 client credentials, portal API token) and both key modes (RSA
// key PEM from the vault, RSA key unlocked with the account password).
func TestHelvetiSafeModes(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.set("prod/openai", "sk-hs-VALUE-0a1b2c3d4e", time.Time{})
	for _, auth := range []string{HSAuthOAuth2, HSAuthToken} {
		for _, key := range []string{HSKeyPEM, HSKeyPass} {
			t.Run(auth+"/"+key, func(t *testing.T) {
				c := buildCache(t, f.def(t, auth, key), nil, clk)
				v, err := c.Fetch(context.Background(), "prod/openai")
				if err != nil {
					t.Fatal(err)
				}
				if string(v.Secret.Bytes()) != "sk-hs-VALUE-0a1b2c3d4e" || v.Kind != vault.KindStatic {
					t.Fatalf("got %q kind %q", v.Secret.Bytes(), v.Kind)
				}
				if err := CheckSource(context.Background(), c.Source()); err != nil {
					t.Fatalf("doctor check: %v", err)
				}
			})
		}
	}
}

// TestHelvetiSafeTokenRefresh: the OAuth2 token (60 s) is replaced 30 s
// before it expires, so no request is ever refused for an expired token.
func TestHelvetiSafeTokenRefresh(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	for _, k := range []string{"a", "b", "c", "d"} {
		f.set(k, "value-"+k+"-xxxx", time.Time{})
	}
	def := f.def(t, HSAuthOAuth2, HSKeyPEM)
	def.Config["ttl"] = "1s"
	c := buildCache(t, def, nil, clk)
	ctx := context.Background()
	steps := []time.Duration{0, 20 * time.Second, 15 * time.Second, 40 * time.Second}
	for i, step := range steps {
		clk.Advance(step)
		if _, err := c.Fetch(ctx, []string{"a", "b", "c", "d"}[i]); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	tokens, _, _, rejected := f.counts()
	// t=0 new token (valid to 60), t=20 reuse, t=35 (>30) refresh, t=75 (>65) refresh.
	if tokens != 3 || rejected != 0 {
		t.Fatalf("token requests = %d (want 3), refused requests = %d (want 0)", tokens, rejected)
	}
}

// TestHelvetiSafeTokenRevoked: a token the server forgets (401) is
// replaced once, transparently.
func TestHelvetiSafeTokenRevoked(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.set("k", "value-k-zzzz", time.Time{})
	c := buildCache(t, f.def(t, HSAuthOAuth2, HSKeyPEM), nil, clk)
	if _, err := c.Fetch(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	clear(f.tokens)
	f.mu.Unlock()
	c.invalidate("")
	if _, err := c.Fetch(context.Background(), "k"); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if tokens, _, _, _ := f.counts(); tokens != 2 {
		t.Fatalf("token requests = %d, want 2", tokens)
	}
}

// TestHelvetiSafeExpired: a secret past expires_at is refused
// (CREDENTIAL_EXPIRED), and one that expires while cached stops being
// served at that moment.
func TestHelvetiSafeExpired(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.set("old", "value-old-1234", clk.Now().Add(-time.Minute))
	f.set("soon", "value-soon-1234", clk.Now().Add(10*time.Second))
	def := f.def(t, HSAuthToken, HSKeyPEM)
	def.Config["stale_for"] = "1h"
	c := buildCache(t, def, nil, clk)
	ctx := context.Background()
	_, err := c.Fetch(ctx, "old")
	if !errors.Is(err, ErrExpired) || Code(err) != "CREDENTIAL_EXPIRED" {
		t.Fatalf("expired secret: %v (code %s)", err, Code(err))
	}
	v, err := c.Fetch(ctx, "soon")
	if err != nil || v.ExpiresAt.IsZero() {
		t.Fatalf("soon: %v, expires %v", err, v.ExpiresAt)
	}
	clk.Advance(11 * time.Second)
	if _, err := c.Fetch(ctx, "soon"); !errors.Is(err, ErrExpired) {
		t.Fatalf("after its expires_at, even with a stale window: %v", err)
	}
}

// TestHelvetiSafeWrongKey: the wrong RSA key or password is a clear
// CREDENTIAL_INVALID error naming the source and what to check.
func TestHelvetiSafeWrongKey(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.set("k", "value-k-9999", time.Time{})
	_, pemB := loadRSA(t, "test-rsa-b.pem")
	cases := map[string]struct {
		edit func(d *vault.SourceDef)
		want string
	}{
		"other RSA key": {func(d *vault.SourceDef) { d.Secrets["rsa_key_pem"] = vault.NewSecret(pemB) },
			"does not unwrap with this RSA private key"},
		"wrong password": {func(d *vault.SourceDef) {
			d.Config["key_mode"] = HSKeyPass
			delete(d.Secrets, "rsa_key_pem")
			d.Secrets["password"] = vault.NewSecret([]byte("not the password"))
		}, "password does not unlock the private key"},
		"oaep sha1 assumed": {func(d *vault.SourceDef) { d.Config["assume.oaep_hash"] = "sha1" }, "assume.oaep_hash"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := f.def(t, HSAuthToken, HSKeyPEM)
			tc.edit(d)
			c := buildCache(t, d, nil, clk)
			_, err := c.Fetch(context.Background(), "k")
			if !errors.Is(err, ErrAuth) || Code(err) != "CREDENTIAL_INVALID" {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"`+d.Name+`"`) {
				t.Fatalf("error %q does not say %q and name the source", err, tc.want)
			}
		})
	}
	if _, _, err := Build(&vault.SourceDef{Name: "x", Type: TypeHelvetiSafe, Config: map[string]string{"base_url": f.srv.URL,
		"auth": "token", "key_mode": "pem"}, Secrets: map[string]vault.Secret{"api_token": vault.NewSecret([]byte("t0k3n")),
		"rsa_key_pem": vault.NewSecret([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))}}); err == nil ||
		!strings.Contains(err.Error(), "not a PKCS#8 or PKCS#1 RSA key") {
		t.Fatalf("garbage PEM: %v", err)
	}
}

// TestHelvetiSafeStatusMapping: the documented status codes become the
// airlock error classes, with the source named and Retry-After kept.
func TestHelvetiSafeStatusMapping(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.force["limited"] = http.StatusTooManyRequests
	f.force["denied"] = http.StatusForbidden
	f.force["conflict"] = http.StatusConflict
	cases := map[string]struct {
		key, token string
		class      error
		code       string
	}{
		"404 not found":      {"missing", "", ErrNotFound, "CREDENTIAL_NOT_FOUND"},
		"401 wrong token":    {"missing", "wrong-portal-token", ErrAuth, "CREDENTIAL_INVALID"},
		"403 forbidden":      {"denied", "", ErrAuth, "CREDENTIAL_INVALID"},
		"409 conflict":       {"conflict", "", ErrUnavailable, "CREDENTIAL_SOURCE_UNAVAILABLE"},
		"429 rate limited":   {"limited", "", ErrUnavailable, "CREDENTIAL_SOURCE_UNAVAILABLE"},
		"bad version pinned": {"k#@3", "", ErrNotFound, "CREDENTIAL_NOT_FOUND"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := f.def(t, HSAuthToken, HSKeyPEM)
			if tc.token != "" {
				d.Secrets["api_token"] = vault.NewSecret([]byte(tc.token))
			}
			c := buildCache(t, d, nil, clk)
			_, err := c.Fetch(context.Background(), tc.key)
			var se *Error
			if !errors.Is(err, tc.class) || Code(err) != tc.code || !errors.As(err, &se) || se.Source != d.Name {
				t.Fatalf("err = %v (code %s), want %v", err, Code(err), tc.class)
			}
			if name == "429 rate limited" && se.RetryAfter != 7*time.Second {
				t.Fatalf("RetryAfter = %s, want 7s", se.RetryAfter)
			}
		})
	}
}

// TestHelvetiSafeAssumptionAlternatives: a server that uses the other
// likely choices (OAEP SHA-1, nonce in its own field, the key as AAD, a
// JSON token body, a JSON plaintext) works by setting assume.* only, and
// fails clearly without them.
func TestHelvetiSafeAssumptionAlternatives(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.assume.OAEPHash, f.assume.NonceLayout, f.assume.NonceField = "sha1", "field", "iv"
	f.assume.AAD, f.assume.TokenBody, f.assume.ValueFormat = "key", "json", "json:value"
	f.assume.WrappedKeyField, f.assume.CiphertextField = "encrypted_org_key", "data"
	f.set("k", "value-alt-5678", time.Time{})
	d := f.def(t, HSAuthOAuth2, HSKeyPEM)
	if _, err := buildCache(t, d, nil, clk).Fetch(context.Background(), "k"); err == nil {
		t.Fatal("defaults against an alternative server worked")
	}
	for k, v := range map[string]string{"oaep_hash": "sha1", "nonce_layout": "field", "nonce_field": "iv", "aad": "key",
		"token_body": "json", "value_format": "json:value", "wrapped_key_field": "encrypted_org_key", "ciphertext_field": "data"} {
		d.Config["assume."+k] = v
	}
	v, err := buildCache(t, d, nil, clk).Fetch(context.Background(), "k")
	if err != nil || string(v.Secret.Bytes()) != "value-alt-5678" {
		t.Fatalf("with assume.*: %q, %v", v.Secret.Bytes(), err)
	}
	d.Config["assume.no_such_thing"] = "1"
	if _, _, err := Build(d); err == nil || !strings.Contains(err.Error(), "unknown assumption") {
		t.Fatalf("unknown assumption: %v", err)
	}
}

// TestHelvetiSafeExpiryFromList: with assume.expires_source=list, the
// expiry in the list metadata is honoured though the secret's own answer
// carries none.
func TestHelvetiSafeExpiryFromList(t *testing.T) {
	clk := newClock()
	f := newHSFake(t, clk)
	f.expiryInList = true
	f.set("old", "value-listed-old-1", clk.Now().Add(-time.Minute))
	f.set("fresh", "value-listed-new-2", clk.Now().Add(time.Hour))
	d := f.def(t, HSAuthToken, HSKeyPEM)
	if _, err := buildCache(t, d, nil, clk).Fetch(context.Background(), "old"); err != nil {
		t.Fatalf("without the list the expiry is unknown, so this works: %v", err)
	}
	d.Config["assume.expires_source"] = "list"
	c := buildCache(t, d, nil, clk)
	if _, err := c.Fetch(context.Background(), "old"); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired per list: %v", err)
	}
	v, err := c.Fetch(context.Background(), "fresh")
	if err != nil || !v.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("fresh: %v, expires %v", err, v.ExpiresAt)
	}
}
