package source

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is the one place that holds what airlock ASSUMES about
// HelvetiSafe beyond its public description (helvetisafe-client 0.1.2
// documents the endpoints, OAuth2 client credentials refreshed 30 s before
// expiry, RSA-OAEP wrapping of the organisation key, Argon2id for the
// account password, AES-256-GCM with a random nonce, expires_at, and the
// status codes 401/403/404/409/429 - nothing more). Each assumption can be
// changed per source, without a rebuild, with a source config key
// "assume.NAME" (`airlock source add helvetisafe ... --assume NAME=VALUE`).
// README.md ("HelvetiSafe assumptions") has the same table; keep both true.

// HelvetiSafeAssumptions are the protocol details the public description
// leaves open. [DefaultHelvetiSafeAssumptions] are airlock's guesses.
type HelvetiSafeAssumptions struct {
	TokenPath       string        // token_path: OAuth2 token endpoint (documented: /oauth/token)
	TokenBody       string        // token_body: "form" (RFC 6749 §4.4) or "json"
	ScopeParam      string        // scope_param: "scope" (RFC 6749, space-joined) or e.g. "scopes"
	RefreshBefore   time.Duration // refresh_before: documented 30s
	OrgKeyPath      string        // org_key_path: documented /api/v1/credentials/org-key
	WrappedKeyField string        // wrapped_key_field: JSON field of the RSA-OAEP-wrapped org key (base64)
	OAEPHash        string        // oaep_hash: "sha256" or "sha1" (same hash for MGF1)
	EncKeyField     string        // enc_private_key_field: password mode, the encrypted private key (base64)
	SaltField       string        // kdf_salt_field: password mode, the Argon2id salt (base64)
	ArgonTime       uint32        // argon2_time: passes
	ArgonMemoryKiB  uint32        // argon2_memory_kib
	ArgonThreads    uint8         // argon2_threads
	SecretPath      string        // secret_path: documented /api/v1/secrets/{key} ({key} path-escaped)
	CiphertextField string        // ciphertext_field: JSON field of the AES-256-GCM ciphertext (base64)
	NonceLayout     string        // nonce_layout: "prefix" (nonce||ciphertext||tag) or "field"
	NonceField      string        // nonce_field: with nonce_layout=field, the nonce's JSON field (base64)
	AAD             string        // aad: "none" or "key" (the secret's key as GCM associated data)
	ExpiresField    string        // expires_field: RFC 3339 time or null
	ExpiresSource   string        // expires_source: "secret" (the secret's answer) or "list" (list metadata)
	ListPath        string        // list_path: with expires_source=list, the secret list endpoint
	ListKeyField    string        // list_key_field: the key's field in a list entry
	ValueFormat     string        // value_format: "raw" (plaintext is the value) or "json:FIELD"
}

// DefaultHelvetiSafeAssumptions are used for every field a source does not
// override.
var DefaultHelvetiSafeAssumptions = HelvetiSafeAssumptions{
	TokenPath:       "/oauth/token",
	TokenBody:       "form",
	ScopeParam:      "scope",
	RefreshBefore:   30 * time.Second,
	OrgKeyPath:      "/api/v1/credentials/org-key",
	WrappedKeyField: "wrapped_key",
	OAEPHash:        "sha256",
	EncKeyField:     "encrypted_private_key",
	SaltField:       "kdf_salt",
	ArgonTime:       3,
	ArgonMemoryKiB:  64 * 1024,
	ArgonThreads:    4,
	SecretPath:      "/api/v1/secrets/{key}",
	CiphertextField: "ciphertext",
	NonceLayout:     "prefix",
	NonceField:      "nonce",
	AAD:             "none",
	ExpiresField:    "expires_at",
	ExpiresSource:   "secret",
	ListPath:        "/api/v1/secrets",
	ListKeyField:    "key",
	ValueFormat:     "raw",
}

// Further assumptions that are not configurable (README lists them too):
//   - the token response is RFC 6749's {"access_token", "expires_in"};
//   - {key} in secret_path is escaped segment by segment, '/' kept;
//   - a list answer is a JSON array of entries, or an object holding one
//     under "secrets", "items" or "data";
//   - base64 is standard or URL alphabet, padded or not (all accepted);
//   - the GCM nonce is 12 bytes and the tag 16 bytes, appended;
//   - password mode: Argon2id(password, salt) gives a 32-byte AES-256-GCM
//     key that opens the encrypted private key with the same nonce layout
//     as secrets; the plaintext is a PKCS#8 or PKCS#1 RSA key, DER or PEM;
//   - a secret whose expires_at has passed is refused even if served.

const assumePrefix = "assume."

// parseHelvetiSafeAssumptions overrides the defaults with cfg's
// "assume.NAME" keys. An unknown name or a bad value is an error.
func parseHelvetiSafeAssumptions(cfg map[string]string) (HelvetiSafeAssumptions, error) {
	a := DefaultHelvetiSafeAssumptions
	str := map[string]*string{"token_path": &a.TokenPath, "scope_param": &a.ScopeParam, "org_key_path": &a.OrgKeyPath,
		"wrapped_key_field": &a.WrappedKeyField, "enc_private_key_field": &a.EncKeyField, "kdf_salt_field": &a.SaltField,
		"secret_path": &a.SecretPath, "ciphertext_field": &a.CiphertextField, "nonce_field": &a.NonceField,
		"expires_field": &a.ExpiresField, "list_path": &a.ListPath, "list_key_field": &a.ListKeyField}
	enum := map[string]struct {
		p    *string
		want []string
	}{
		"token_body": {&a.TokenBody, []string{"form", "json"}}, "oaep_hash": {&a.OAEPHash, []string{"sha256", "sha1"}},
		"nonce_layout": {&a.NonceLayout, []string{"prefix", "field"}}, "aad": {&a.AAD, []string{"none", "key"}},
		"expires_source": {&a.ExpiresSource, []string{"secret", "list"}},
	}
	for k, v := range cfg {
		name, ok := strings.CutPrefix(k, assumePrefix)
		if !ok {
			continue
		}
		if err := setAssumption(&a, name, v, str, enum); err != nil {
			return a, fmt.Errorf("assume.%s=%q: %w", name, v, err)
		}
	}
	if !strings.Contains(a.SecretPath, "{key}") {
		return a, fmt.Errorf("assume.secret_path %q: must contain {key}", a.SecretPath)
	}
	return a, nil
}

func setAssumption(a *HelvetiSafeAssumptions, name, v string, str map[string]*string, enum map[string]struct {
	p    *string
	want []string
}) error {
	if p, ok := str[name]; ok {
		if v == "" {
			return fmt.Errorf("must not be empty")
		}
		*p = v
		return nil
	}
	if e, ok := enum[name]; ok {
		if !slices.Contains(e.want, v) {
			return fmt.Errorf("want one of %s", strings.Join(e.want, ", "))
		}
		*e.p = v
		return nil
	}
	var err error
	switch name {
	case "refresh_before":
		a.RefreshBefore, err = time.ParseDuration(v)
	case "argon2_time":
		a.ArgonTime, err = parseBounded[uint32](v, 1, 10)
	case "argon2_memory_kib":
		a.ArgonMemoryKiB, err = parseBounded[uint32](v, 8, 4<<20)
	case "argon2_threads":
		a.ArgonThreads, err = parseBounded[uint8](v, 1, 64)
	case "value_format":
		if f, ok := strings.CutPrefix(v, "json:"); v != "raw" && (!ok || f == "") {
			err = fmt.Errorf("want raw or json:FIELD")
		}
		a.ValueFormat = v
	default:
		return fmt.Errorf("unknown assumption (see README, HelvetiSafe assumptions)")
	}
	return err
}

func parseBounded[T uint8 | uint32](v string, lo, hi uint64) (T, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a number from %d to %d", lo, hi)
	}
	return T(n), nil
}
