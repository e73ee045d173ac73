package redisstore

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrNoTokenKey is returned by the OAuth2 methods when Options.TokenKey
// is not 32 bytes.
var ErrNoTokenKey = errors.New("oauth2 token key must be 32 bytes")

// ErrBadRecord is returned when a sealed token record in Redis does not
// open: another key, a tampered or swapped record.
var ErrBadRecord = errors.New("sealed oauth2 record does not open")

// tokenAD binds a sealed record to its credential and version, so a
// record cannot be moved to another credential or replayed as newer.
func tokenAD(cred string, version int64) []byte {
	return []byte("airlock oauth2 token v1\x00" + cred + "\x00" + strconv.FormatInt(version, 10))
}

// seal encrypts plain with XChaCha20-Poly1305: nonce || ciphertext.
func seal(key []byte, cred string, version int64, plain []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrNoTokenKey
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal oauth2 token: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, tokenAD(cred, version)), nil
}

// open reverses seal; any change to the record, credential or version fails.
func open(key []byte, cred string, version int64, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, ErrNoTokenKey
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrBadRecord
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], tokenAD(cred, version))
	if err != nil {
		return nil, ErrBadRecord
	}
	return plain, nil
}

// TokenKeyFrom derives the Options.TokenKey from the vault's data key
// (HKDF-SHA256, its own info string), so Redis never sees the data key
// and a leaked token key opens no vault.
func TokenKeyFrom(dataKey []byte) ([]byte, error) {
	if len(dataKey) < 32 {
		return nil, fmt.Errorf("derive oauth2 token key: data key has %d bytes, want at least 32", len(dataKey))
	}
	return hkdf.Key(sha256.New, dataKey, nil, "airlock redis oauth2 token key v1", chacha20poly1305.KeySize)
}
