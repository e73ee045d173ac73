package rpc

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/airlock/airlock/vault"
)

// encryptInfo is the HKDF info of the encrypt/decrypt key: changing it
// orphans every ciphertext handed out.
const encryptInfo = "airlock rpc encrypt v1"

type dataParams struct {
	Algorithm string `json:"algorithm"`
	Data      string `json:"data"`
}

func sign(_ *Server, _ context.Context, _ *call, cred *vault.Credential, raw json.RawMessage) (any, *Error) {
	var p dataParams
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	var h func() hash.Hash
	switch strings.ToLower(p.Algorithm) {
	case "", "hmac-sha256":
		h, p.Algorithm = sha256.New, "hmac-sha256"
	case "hmac-sha512":
		h, p.Algorithm = sha512.New, "hmac-sha512"
	default:
		return nil, invalid("unsupported algorithm (want hmac-sha256 or hmac-sha512)")
	}
	m := hmac.New(h, cred.Value.Bytes())
	m.Write([]byte(p.Data))
	return map[string]any{
		"signature": base64.StdEncoding.EncodeToString(m.Sum(nil)),
		"algorithm": p.Algorithm,
	}, nil
}

// aeadFor derives the credential's XChaCha20-Poly1305 key with HKDF-SHA256.
func aeadFor(cred *vault.Credential) (cipherAEAD, *Error) {
	key, err := hkdf.Key(sha256.New, cred.Value.Bytes(), nil, encryptInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, internal("derive the encryption key")
	}
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, internal("create the cipher")
	}
	return a, nil
}

type cipherAEAD interface {
	NonceSize() int
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// encrypt seals data under the credential's key, with the credential path as
// associated data: the ciphertext is base64(nonce | sealed).
func encrypt(_ *Server, _ context.Context, _ *call, cred *vault.Credential, raw json.RawMessage) (any, *Error) {
	var p dataParams
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	a, e := aeadFor(cred)
	if e != nil {
		return nil, e
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(p.Data)+chacha20poly1305.Overhead)
	rand.Read(nonce)
	out := a.Seal(nonce, nonce, []byte(p.Data), []byte(cred.Path))
	return map[string]any{"ciphertext": base64.StdEncoding.EncodeToString(out)}, nil
}

func decrypt(_ *Server, _ context.Context, _ *call, cred *vault.Credential, raw json.RawMessage) (any, *Error) {
	var p dataParams
	if e := decodeParams(raw, &p); e != nil {
		return nil, e
	}
	a, e := aeadFor(cred)
	if e != nil {
		return nil, e
	}
	blob, err := base64.StdEncoding.DecodeString(p.Data)
	if err != nil || len(blob) < a.NonceSize()+chacha20poly1305.Overhead {
		return nil, invalid("decryption failed")
	}
	n := a.NonceSize()
	plain, err := a.Open(nil, blob[:n], blob[n:], []byte(cred.Path))
	if err != nil {
		return nil, invalid("decryption failed")
	}
	return map[string]any{"plaintext": string(plain)}, nil
}
