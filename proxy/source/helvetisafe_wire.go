package source

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// The HelvetiSafe wire formats, parsed from untrusted bytes (fuzzed).
// Parse errors never echo the input.

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken string
	ExpiresIn   time.Duration
}

func parseTokenResponse(b []byte) (tokenResponse, error) {
	var r struct {
		AccessToken string   `json:"access_token"`
		ExpiresIn   *float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return tokenResponse{}, errors.New("token response is not JSON")
	}
	if r.AccessToken == "" {
		return tokenResponse{}, errors.New("token response has no access_token")
	}
	t := tokenResponse{AccessToken: r.AccessToken, ExpiresIn: time.Hour}
	if r.ExpiresIn != nil {
		if *r.ExpiresIn <= 0 || *r.ExpiresIn > 366*24*3600 {
			return tokenResponse{}, errors.New("token response expires_in is out of range")
		}
		t.ExpiresIn = time.Duration(*r.ExpiresIn * float64(time.Second))
	}
	return t, nil
}

// jsonFields decodes a JSON object into raw fields.
func jsonFields(b []byte, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%s response is not a JSON object", what)
	}
	return m, nil
}

// b64Field returns the base64-decoded string field name of m.
func b64Field(m map[string]json.RawMessage, name, what string) ([]byte, error) {
	raw, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s response has no %q field", what, name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s response field %q is not a string", what, name)
	}
	b, err := decodeB64(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("%s response field %q is not base64", what, name)
	}
	return b, nil
}

// decodeB64 accepts standard and URL alphabets, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// orgKeyResponse is the org-key answer: the wrapped key and, in password
// mode, the encrypted private key and its salt.
type orgKeyResponse struct {
	Wrapped    []byte
	EncPrivKey []byte // nil when absent
	Salt       []byte
}

func parseOrgKeyResponse(b []byte, a *HelvetiSafeAssumptions, needPrivKey bool) (orgKeyResponse, error) {
	m, err := jsonFields(b, "org-key")
	if err != nil {
		return orgKeyResponse{}, err
	}
	var r orgKeyResponse
	if r.Wrapped, err = b64Field(m, a.WrappedKeyField, "org-key"); err != nil {
		return r, err
	}
	if !needPrivKey {
		return r, nil
	}
	if r.EncPrivKey, err = b64Field(m, a.EncKeyField, "org-key"); err != nil {
		return r, err
	}
	if r.Salt, err = b64Field(m, a.SaltField, "org-key"); err != nil {
		return r, err
	}
	return r, nil
}

// secretResponse is one secret: ciphertext (nonce included or apart) and
// its expiry.
type secretResponse struct {
	Nonce, Ciphertext []byte
	ExpiresAt         time.Time
}

func parseSecretResponse(b []byte, a *HelvetiSafeAssumptions) (secretResponse, error) {
	m, err := jsonFields(b, "secret")
	if err != nil {
		return secretResponse{}, err
	}
	var r secretResponse
	ct, err := b64Field(m, a.CiphertextField, "secret")
	if err != nil {
		return r, err
	}
	if a.NonceLayout == "field" {
		if r.Nonce, err = b64Field(m, a.NonceField, "secret"); err != nil {
			return r, err
		}
		r.Ciphertext = ct
	} else {
		if len(ct) < gcmNonceSize {
			return r, errors.New("secret ciphertext is shorter than a nonce")
		}
		r.Nonce, r.Ciphertext = ct[:gcmNonceSize], ct[gcmNonceSize:]
	}
	if len(r.Nonce) != gcmNonceSize || len(r.Ciphertext) < gcmTagSize {
		return r, errors.New("secret nonce or ciphertext has the wrong length")
	}
	if r.ExpiresAt, err = parseExpiry(m, a.ExpiresField); err != nil {
		return r, fmt.Errorf("secret %w", err)
	}
	return r, nil
}

// parseListExpiry finds key in a secret list answer and returns its
// expires_at (zero: none). found is false when key is not listed.
func parseListExpiry(b []byte, key string, a *HelvetiSafeAssumptions) (exp time.Time, found bool, err error) {
	var entries []map[string]json.RawMessage
	if json.Unmarshal(b, &entries) != nil {
		m, err := jsonFields(b, "secret list")
		if err != nil {
			return exp, false, err
		}
		for _, name := range []string{"secrets", "items", "data"} {
			if raw, ok := m[name]; ok && json.Unmarshal(raw, &entries) == nil {
				break
			}
		}
	}
	for _, e := range entries {
		var k string
		if json.Unmarshal(e[a.ListKeyField], &k) != nil || k != key {
			continue
		}
		exp, err = parseExpiry(e, a.ExpiresField)
		return exp, true, err
	}
	return exp, false, nil
}

// parseExpiry reads an RFC 3339 time or null from m[field].
func parseExpiry(m map[string]json.RawMessage, field string) (time.Time, error) {
	raw, ok := m[field]
	if !ok || string(raw) == "null" {
		return time.Time{}, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, fmt.Errorf("field %q is not a string", field)
	}
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("field %q is not an RFC 3339 time", field)
	}
	return t, nil
}

const (
	gcmNonceSize = 12
	gcmTagSize   = 16
)

// gcmOpen decrypts AES-256-GCM.
func gcmOpen(key, nonce, ct, aad []byte) ([]byte, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("key is %d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(nonce) != g.NonceSize() {
		return nil, errors.New("bad nonce length")
	}
	return g.Open(nil, nonce, ct, aad)
}

func oaepHash(name string) hash.Hash {
	if name == "sha1" {
		return sha1.New()
	}
	return sha256.New()
}

// unwrapOrgKey opens the RSA-OAEP-wrapped organisation key.
func unwrapOrgKey(priv *rsa.PrivateKey, wrapped []byte, a *HelvetiSafeAssumptions) ([]byte, error) {
	key, err := rsa.DecryptOAEP(oaepHash(a.OAEPHash), nil, priv, wrapped, nil)
	if err != nil {
		return nil, fmt.Errorf("the organisation key does not unwrap with this RSA private key (RSA-OAEP %s): "+
			"wrong key or password, or set assume.oaep_hash", strings.ToUpper(a.OAEPHash))
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the unwrapped organisation key is %d bytes, want 32 (AES-256)", len(key))
	}
	return key, nil
}

// parseRSAKey accepts PKCS#8 or PKCS#1, PEM or DER.
func parseRSAKey(b []byte) (*rsa.PrivateKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	if k, err := x509.ParsePKCS8PrivateKey(b); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("the private key is not an RSA key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(b); err == nil {
		return k, nil
	}
	return nil, errors.New("the private key is not a PKCS#8 or PKCS#1 RSA key (PEM or DER)")
}

// unlockPrivateKey derives the key-encryption key from the account password
// with Argon2id and opens the encrypted private key.
func unlockPrivateKey(password []byte, r orgKeyResponse, a *HelvetiSafeAssumptions) (*rsa.PrivateKey, error) {
	kek := argon2.IDKey(password, r.Salt, a.ArgonTime, a.ArgonMemoryKiB, a.ArgonThreads, 32)
	if len(r.EncPrivKey) < gcmNonceSize+gcmTagSize {
		return nil, errors.New("the encrypted private key is too short")
	}
	der, err := gcmOpen(kek, r.EncPrivKey[:gcmNonceSize], r.EncPrivKey[gcmNonceSize:], nil)
	if err != nil {
		return nil, errors.New("the account password does not unlock the private key (wrong password, or the Argon2id assumptions differ)")
	}
	k, err := parseRSAKey(der)
	if err != nil {
		return nil, fmt.Errorf("unlocked private key: %w", err)
	}
	return k, nil
}

// decodeValue applies assume.value_format to the plaintext.
func decodeValue(pt []byte, a *HelvetiSafeAssumptions) ([]byte, error) {
	f, ok := strings.CutPrefix(a.ValueFormat, "json:")
	if !ok {
		return pt, nil
	}
	return jsonField(pt, f)
}

// jsonField returns the string (or raw JSON, for non-strings) field of a
// JSON object; errors never echo the document.
func jsonField(doc []byte, field string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return nil, fmt.Errorf("value is not a JSON object, so field %q cannot be taken", field)
	}
	raw, ok := m[field]
	if !ok {
		return nil, fmt.Errorf("value has no field %q: %w", field, ErrNotFound)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s), nil
	}
	return bytes.Clone(raw), nil
}
