package source

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/vault"
)

// TestKVAuthMethods reads fields and pinned versions with a token and with
// AppRole, over TLS with a custom CA and a namespace.
func TestKVAuthMethods(t *testing.T) {
	clk := newClock()
	f := newKVFake(t, clk)
	f.put("apps/openai", map[string]string{"api_key": "sk-kv-v1-aaaa", "org": "org-1"})
	f.put("apps/openai", map[string]string{"api_key": "sk-kv-v2-bbbb", "org": "org-1"})
	f.put("single", map[string]string{"password": "only-field-cccc"})
	for _, auth := range []string{KVAuthToken, KVAuthAppRole} {
		t.Run(auth, func(t *testing.T) {
			c := buildCache(t, f.def(auth), nil, clk)
			ctx := context.Background()
			cases := map[vault.Ref]string{
				{Key: "apps/openai", Field: "api_key"}:             "sk-kv-v2-bbbb",
				{Key: "apps/openai", Field: "api_key", Version: 1}: "sk-kv-v1-aaaa",
				{Key: "single"}: "only-field-cccc",
			}
			for ref, want := range cases {
				v, err := c.Fetch(ctx, SourceKey(ref))
				if err != nil || string(v.Secret.Bytes()) != want {
					t.Fatalf("%+v: %q, %v; want %q", ref, v.Secret.Bytes(), err, want)
				}
			}
			for key, class := range map[string]error{"apps/openai": ErrNotFound, "apps/openai#nofield": ErrNotFound,
				"nothing/here#x": ErrNotFound, "apps/openai#api_key@9": ErrNotFound} {
				if _, err := c.Fetch(ctx, key); !errors.Is(err, class) {
					t.Fatalf("%s: %v, want %v", key, err, class)
				}
			}
			if err := CheckSource(ctx, c.Source()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKVAuthRefused: a wrong token, a wrong secret ID and a wrong
// namespace are CREDENTIAL_INVALID naming the source; a wrong CA is
// unavailable.
func TestKVAuthRefused(t *testing.T) {
	clk := newClock()
	f := newKVFake(t, clk)
	f.put("k", map[string]string{"v": "value-kkkk"})
	cases := map[string]struct {
		auth  string
		edit  func(d *vault.SourceDef)
		class error
	}{
		"token":     {KVAuthToken, func(d *vault.SourceDef) { d.Secrets["token"] = vault.NewSecret([]byte("hvs.wrong")) }, ErrAuth},
		"secret id": {KVAuthAppRole, func(d *vault.SourceDef) { d.Secrets["secret_id"] = vault.NewSecret([]byte("wrong-id")) }, ErrAuth},
		"namespace": {KVAuthToken, func(d *vault.SourceDef) { d.Config["namespace"] = "team-b" }, ErrAuth},
		"no CA":     {KVAuthToken, func(d *vault.SourceDef) { delete(d.Config, "ca_pem") }, ErrUnavailable},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := f.def(tc.auth)
			tc.edit(d)
			_, err := buildCache(t, d, nil, clk).Fetch(context.Background(), "k")
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), `"`+d.Name+`"`) {
				t.Fatalf("err = %v, want %v naming the source", err, tc.class)
			}
		})
	}
}

// TestKVRotation: a value rotated in Vault is served within one TTL.
func TestKVRotation(t *testing.T) {
	clk := newClock()
	f := newKVFake(t, clk)
	f.put("db", map[string]string{"password": "rotate-old-1111"})
	d := f.def(KVAuthToken)
	d.Config["ttl"] = "10s"
	c := buildCache(t, d, nil, clk)
	ctx := context.Background()
	get := func() string {
		v, err := c.Fetch(ctx, "db#password")
		if err != nil {
			t.Fatal(err)
		}
		return string(v.Secret.Bytes())
	}
	if got := get(); got != "rotate-old-1111" {
		t.Fatal(got)
	}
	f.put("db", map[string]string{"password": "rotate-new-2222"})
	clk.Advance(5 * time.Second)
	if got := get(); got != "rotate-old-1111" {
		t.Fatalf("inside the TTL: %q (cache not used)", got)
	}
	clk.Advance(5 * time.Second)
	if got := get(); got != "rotate-new-2222" {
		t.Fatalf("after one TTL: %q, want the rotated value", got)
	}
}

// TestKVDown: with stale_for, a cached value is served for that long after
// Vault stops answering, then CREDENTIAL_SOURCE_UNAVAILABLE naming the
// source; with the default (0) it fails closed at once.
func TestKVDown(t *testing.T) {
	for name, stale := range map[string]time.Duration{"stale 30s": 30 * time.Second, "default fail closed": 0} {
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			f := newKVFake(t, clk)
			f.put("db", map[string]string{"password": "down-value-3333"})
			d := f.def(KVAuthToken)
			d.Config["ttl"] = "10s"
			if stale > 0 {
				d.Config["stale_for"] = stale.String()
			}
			o := newObserved(t)
			c := buildCache(t, d, o, clk)
			ctx := context.Background()
			if _, err := c.Fetch(ctx, "db"); err != nil {
				t.Fatal(err)
			}
			f.srv.Close() // Vault down: connections refused
			clk.Advance(11 * time.Second)
			v, err := c.Fetch(ctx, "db")
			if stale > 0 && (err != nil || string(v.Secret.Bytes()) != "down-value-3333") {
				t.Fatalf("inside the stale window: %v", err)
			}
			if stale == 0 && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("fail closed: %v", err)
			}
			clk.Advance(stale)
			_, err = c.Fetch(ctx, "db")
			if !errors.Is(err, ErrUnavailable) || Code(err) != "CREDENTIAL_SOURCE_UNAVAILABLE" || !strings.Contains(err.Error(), `"kv-token"`) {
				t.Fatalf("past the stale window: %v", err)
			}
			assertNoLeak(t, "logs", o.logs(), f.fakeSecrets()...)
			assertNoLeak(t, "metrics", o.metrics(), f.fakeSecrets()...)
			assertNoLeak(t, "error", err.Error(), f.fakeSecrets()...)
			if !strings.Contains(o.metrics(), `airlock_source_fetches_total{result="unavailable",source="kv-token"}`) {
				t.Fatalf("no unavailable fetch counted:\n%s", o.metrics())
			}
		})
	}
}

// TestKVTokenLifecycle: a renewable token is renewed two thirds into its
// TTL; a non-renewable AppRole token is replaced by a new login; an AppRole
// token Vault forgot (403) triggers one re-login.
func TestKVTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	t.Run("renewable", func(t *testing.T) {
		clk := newClock()
		f := newKVFake(t, clk)
		f.put("k", map[string]string{"v": "life-value-4444"})
		d := f.def(KVAuthAppRole)
		d.Config["ttl"] = "1s"
		c := buildCache(t, d, nil, clk)
		for range 4 {
			if _, err := c.Fetch(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			clk.Advance(21 * time.Second) // past 2/3 of 30 s every time
		}
		logins, renewals, _, denied := f.stats()
		if logins != 1 || renewals != 3 || denied != 0 {
			t.Fatalf("logins %d renewals %d denied %d; want 1, 3, 0", logins, renewals, denied)
		}
	})
	t.Run("static renewable token", func(t *testing.T) {
		clk := newClock()
		f := newKVFake(t, clk)
		f.put("k", map[string]string{"v": "life-value-7777"})
		f.mu.Lock()
		tok := f.newToken() // a 30 s renewable token given to airlock
		f.mu.Unlock()
		d := f.def(KVAuthToken)
		d.Secrets["token"] = vault.NewSecret([]byte(tok))
		d.Config["ttl"] = "1s"
		c := buildCache(t, d, nil, clk)
		for range 4 {
			if _, err := c.Fetch(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			clk.Advance(21 * time.Second) // without renewals the token dies at 30 s
		}
		if _, renewals, _, denied := f.stats(); renewals != 3 || denied != 0 {
			t.Fatalf("renewals %d denied %d; want 3, 0", renewals, denied)
		}
	})
	t.Run("not renewable", func(t *testing.T) {
		clk := newClock()
		f := newKVFake(t, clk)
		f.renewable = false
		f.put("k", map[string]string{"v": "life-value-5555"})
		d := f.def(KVAuthAppRole)
		d.Config["ttl"] = "1s"
		c := buildCache(t, d, nil, clk)
		for range 3 {
			if _, err := c.Fetch(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			clk.Advance(21 * time.Second)
		}
		if logins, renewals, _, denied := f.stats(); logins != 3 || renewals != 0 || denied != 0 {
			t.Fatalf("logins %d renewals %d denied %d; want 3, 0, 0", logins, renewals, denied)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		clk := newClock()
		f := newKVFake(t, clk)
		f.put("k", map[string]string{"v": "life-value-6666"})
		d := f.def(KVAuthAppRole)
		d.Config["ttl"] = "1s"
		c := buildCache(t, d, nil, clk)
		if _, err := c.Fetch(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		for _, tok := range f.issued {
			delete(f.tokens, tok)
		}
		f.mu.Unlock()
		clk.Advance(2 * time.Second)
		if _, err := c.Fetch(ctx, "k"); err != nil {
			t.Fatalf("after revocation: %v", err)
		}
		if logins, _, _, _ := f.stats(); logins != 2 {
			t.Fatalf("logins %d, want 2", logins)
		}
	})
}
