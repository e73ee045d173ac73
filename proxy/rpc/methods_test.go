package rpc

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

type listedCredential struct {
	Path      string   `json:"path"`
	Type      string   `json:"type"`
	CreatedAt *string  `json:"created_at"`
	UpdatedAt *string  `json:"updated_at"`
	ExpiresAt *string  `json:"expires_at"`
	Tags      []string `json:"tags"`
}

func TestList(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	r := fc.call("list", fc.with(nil))
	if r.Error != nil {
		t.Fatalf("list: %+v", *r.Error)
	}
	for _, s := range append(allSecrets, "unlisted-SECRET", "hidden") {
		if strings.Contains(string(r.Result), s) {
			t.Fatalf("list result leaks %q: %s", s, r.Result)
		}
	}
	var res struct {
		Credentials []listedCredential `json:"credentials"`
	}
	fc.ok("list", fc.with(nil), &res)
	var paths []string
	for _, c := range res.Credentials {
		paths = append(paths, c.Path)
	}
	want := "api/custom api/token db/password old/key signing/key"
	if got := strings.Join(paths, " "); got != want {
		t.Fatalf("paths %q, want %q", got, want)
	}
	tok := res.Credentials[1]
	if tok.Type != "static" || tok.CreatedAt == nil || tok.ExpiresAt != nil || strings.Join(tok.Tags, ",") != "prod,llm" {
		t.Errorf("api/token metadata %+v", tok)
	}
	if db := res.Credentials[2]; db.ExpiresAt == nil || *db.ExpiresAt != "2030-01-01T01:00:00Z" {
		t.Errorf("db/password expires_at %v", db.ExpiresAt)
	}

	// An agent with a list-everything grant sees everything, still no values.
	o := h.dial()
	o.login("other", h.keys["other"])
	fc.ok("list", fc.with(nil), &res)
	o.ok("list", o.with(nil), &res)
	if len(res.Credentials) != 6 {
		t.Errorf("other sees %d credentials, want 6", len(res.Credentials))
	}
}

type retrieved struct {
	Value     string `json:"value"`
	LeaseID   string `json:"lease_id"`
	TTL       int    `json:"ttl"`
	ExpiresAt string `json:"expires_at"`
}

func TestRetrieve(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	cases := map[string]struct {
		params  map[string]any
		code    string
		wantTTL int
	}{
		"default ttl is the grant cap": {map[string]any{"path": "db/password"}, "", 60},
		"requested ttl below cap":      {map[string]any{"path": "db/password", "ttl": 5}, "", 5},
		"requested ttl above cap":      {map[string]any{"path": "db/password", "ttl": 3600}, "", 60},
		"zero ttl":                     {map[string]any{"path": "db/password", "ttl": 0}, CodeInvalidRequest, 0},
		"ttl wrong type":               {map[string]any{"path": "db/password", "ttl": "5"}, CodeInvalidRequest, 0},
		"no retrieve grant":            {map[string]any{"path": "api/token"}, CodeAccessDenied, 0},
		"no grant at all":              {map[string]any{"path": "secret/other"}, CodeAccessDenied, 0},
		"granted but absent":           {map[string]any{"path": "db/missing"}, CodeCredentialNotFound, 0},
		"expired credential":           {map[string]any{"path": "old/key"}, CodeCredentialExpired, 0},
		"no path":                      {map[string]any{}, CodeInvalidRequest, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.code != "" {
				e := fc.fail("retrieve", fc.with(tc.params), tc.code)
				for _, s := range allSecrets {
					if strings.Contains(e.Message+e.Detail+e.Suggestion, s) {
						t.Fatalf("error leaks a secret: %+v", *e)
					}
				}
				return
			}
			var res retrieved
			fc.ok("retrieve", fc.with(tc.params), &res)
			v, _ := hex.DecodeString(res.Value)
			if string(v) != dbSecret || res.LeaseID == "" || res.TTL != tc.wantTTL {
				t.Fatalf("retrieve = %+v (value %q)", res, v)
			}
			want := h.clock.Now().Add(time.Duration(tc.wantTTL) * time.Second).UTC().Format(time.RFC3339)
			if res.ExpiresAt != want {
				t.Errorf("expires_at %s, want %s", res.ExpiresAt, want)
			}
		})
	}
	var warned bool
	for _, e := range h.logs.FilterField(fieldString("method", "retrieve")).All() {
		if e.ContextMap()["code"] == "OK" {
			warned = e.Level.String() == "warn"
		}
	}
	if !warned {
		t.Error("successful retrieve not logged at warn level")
	}
	h.assertNoSecretsLogged()
}

func TestRetrieveTTLCappedByExpiry(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	h.clock.Add(time.Hour - 30*time.Second) // db/password expires in 30s
	var res retrieved
	fc.ok("retrieve", fc.with(map[string]any{"path": "db/password"}), &res)
	if res.TTL != 30 {
		t.Errorf("ttl %d, want 30 (the credential's remaining life)", res.TTL)
	}
}

func TestReleaseLease(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	var res retrieved
	fc.ok("retrieve", fc.with(map[string]any{"path": "db/password", "ttl": 10}), &res)
	if !h.srv.leases.active(res.LeaseID, h.clock.Now()) {
		t.Fatal("lease not active after retrieve")
	}
	release := map[string]any{"lease_id": res.LeaseID}
	fc.ok("release_lease", release, nil)
	fc.ok("release_lease", release, nil) // idempotent
	if h.srv.leases.active(res.LeaseID, h.clock.Now()) {
		t.Fatal("lease still active after release")
	}
	fc.fail("release_lease", map[string]any{"lease_id": "unknown"}, CodeLeaseExpired)

	// Another agent cannot release (or learn of) bot's lease.
	fc.ok("retrieve", fc.with(map[string]any{"path": "db/password", "ttl": 10}), &res)
	o := h.dial()
	o.login("other", h.keys["other"])
	o.fail("release_lease", map[string]any{"lease_id": res.LeaseID}, CodeLeaseExpired)
	fc.ok("release_lease", map[string]any{"lease_id": res.LeaseID}, nil)
}

func TestLeaseExpires(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	var res retrieved
	fc.ok("retrieve", fc.with(map[string]any{"path": "db/password", "ttl": 2}), &res)
	h.clock.Add(time.Second)
	if !h.srv.leases.active(res.LeaseID, h.clock.Now()) {
		t.Fatal("lease inactive before its ttl")
	}
	h.clock.Add(time.Second)
	if h.srv.leases.active(res.LeaseID, h.clock.Now()) {
		t.Fatal("lease active after its ttl")
	}
	fc.fail("release_lease", map[string]any{"lease_id": res.LeaseID}, CodeLeaseExpired)
}

func TestLeaseTableBounded(t *testing.T) {
	h := newHarness(t, Options{MaxLeases: 2})
	fc := h.bot()
	p := fc.with(map[string]any{"path": "db/password", "ttl": 5})
	fc.ok("retrieve", p, nil)
	fc.ok("retrieve", p, nil)
	fc.fail("retrieve", p, CodeRateLimited)
	h.clock.Add(5 * time.Second) // both expire and are pruned
	fc.ok("retrieve", p, nil)
}

func TestVaultLocked(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	h.b.data.Store(nil)
	cases := map[string]struct {
		method string
		params map[string]any
	}{
		"authenticate":  {"authenticate", map[string]any{"agent_name": "bot"}},
		"list":          {"list", fc.with(nil)},
		"retrieve":      {"retrieve", fc.with(map[string]any{"path": "db/password"})},
		"use":           {"use", fc.with(map[string]any{"path": "signing/key", "operation": "sign"})},
		"release_lease": {"release_lease", map[string]any{"lease_id": "x"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) { fc.fail(tc.method, tc.params, CodeVaultLocked) })
	}
}

func TestNilPolicyDeniesAll(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	h.b.pol.Store(nil)
	fc.fail("use", fc.with(map[string]any{"path": "signing/key", "operation": "sign"}), CodeAccessDenied)
	var res struct {
		Credentials []listedCredential `json:"credentials"`
	}
	fc.ok("list", fc.with(nil), &res)
	if len(res.Credentials) != 0 {
		t.Errorf("list under a nil policy: %+v", res.Credentials)
	}
}
