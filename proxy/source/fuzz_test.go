package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock/airlock/vault"
)

// seedWire adds every testdata/wire file as a seed.
func seedWire(f *testing.F) {
	files, _ := filepath.Glob("testdata/wire/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`null`))
	f.Add([]byte(`{"ciphertext":1}`))
}

// FuzzHelvetiSafeResponses: the HelvetiSafe parsers never panic, and what
// they accept has the shapes the decryption relies on.
func FuzzHelvetiSafeResponses(f *testing.F) {
	seedWire(f)
	prefix, field := DefaultHelvetiSafeAssumptions, DefaultHelvetiSafeAssumptions
	field.NonceLayout = "field"
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range []*HelvetiSafeAssumptions{&prefix, &field} {
			if r, err := parseSecretResponse(b, a); err == nil && (len(r.Nonce) != gcmNonceSize || len(r.Ciphertext) < gcmTagSize) {
				t.Fatalf("accepted nonce %d ciphertext %d bytes", len(r.Nonce), len(r.Ciphertext))
			} else if err != nil && len(b) > 8 && strings.Contains(err.Error(), string(b)) {
				t.Fatal("error echoes the input")
			}
		}
		for _, need := range []bool{false, true} {
			if r, err := parseOrgKeyResponse(b, &prefix, need); err == nil && (len(r.Wrapped) == 0 || need && (len(r.EncPrivKey) == 0 || len(r.Salt) == 0)) {
				t.Fatal("accepted an org-key response without its fields")
			}
		}
		if tr, err := parseTokenResponse(b); err == nil && (tr.AccessToken == "" || tr.ExpiresIn <= 0) {
			t.Fatalf("accepted token %+v", tr)
		}
		_, _ = decodeValue(b, &HelvetiSafeAssumptions{ValueFormat: "json:value"})
		if exp, found, err := parseListExpiry(b, "prod/openai", &prefix); !found && (err == nil && !exp.IsZero()) {
			t.Fatal("an expiry for a key not listed")
		}
	})
}

// FuzzKVResponses: the Vault KV v2 parsers never panic; an accepted secret
// is a field's value.
func FuzzKVResponses(f *testing.F) {
	seedWire(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, field := range []string{"", "api_key"} {
			if v, err := parseKVSecret(b, field); err == nil && v == nil {
				t.Fatal("accepted a secret without a value")
			}
		}
		if a, err := parseKVAuth(b); err == nil && a.ttl < 0 {
			t.Fatal("negative lease")
		}
		if ttl, _, err := parseKVLookup(b); err == nil && ttl < 0 {
			t.Fatal("negative ttl")
		}
	})
}

// FuzzParseKey: SourceKey and ParseKey round-trip.
func FuzzParseKey(f *testing.F) {
	f.Add("prod/db", "password", 3)
	f.Add("a", "", 0)
	f.Add("a#b", "", 0)
	f.Add("k", "x@y", 0)
	f.Add("a#b", "c@d", 1)
	f.Fuzz(func(t *testing.T, key, field string, version int) {
		if key == "" || version < 0 || strings.Contains(field, "#") {
			return
		}
		k, fl, v, err := ParseKey(SourceKey(vault.Ref{Key: key, Field: field, Version: version}))
		if err != nil || k != key || fl != field || v != version {
			t.Fatalf("round trip of %q %q %d: %q %q %d %v", key, field, version, k, fl, v, err)
		}
		_, _, _, _ = ParseKey(key)
	})
}
