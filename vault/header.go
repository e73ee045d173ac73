package vault

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Slot types.
const (
	slotPassphrase = "passphrase"
	slotKeyFile    = "keyfile"
)

// header is the JSON object between the preamble and the payload. It is
// not secret; it is authenticated as the payload's associated data.
type header struct {
	KDF         string `json:"kdf"` // always "argon2id"
	MemoryKiB   uint32 `json:"memory_kib"`
	Time        uint32 `json:"time"`
	Parallelism uint8  `json:"parallelism"`
	Salt        []byte `json:"salt"` // Argon2id salt of the passphrase slot
	Slots       []slot `json:"slots"`
}

// slot is the data key wrapped by one unlock method.
type slot struct {
	Type  string `json:"type"`           // slotPassphrase or slotKeyFile
	Salt  []byte `json:"salt,omitempty"` // keyfile: HKDF salt
	Nonce []byte `json:"nonce"`          // XChaCha20-Poly1305 nonce
	Key   []byte `json:"key"`            // wrapped data key (32 + 16 bytes)
}

func (h *header) params() KDFParams {
	return KDFParams{MemoryKiB: h.MemoryKiB, Time: h.Time, Parallelism: h.Parallelism}
}

// parseHeader decodes and validates b strictly: unknown fields, trailing
// data, bad lengths and out-of-bounds KDF parameters are refused, all
// before any key derivation.
func parseHeader(b []byte) (*header, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var h header
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("header: malformed json (%v): %w", err, ErrCorrupt)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("header: trailing data: %w", ErrCorrupt)
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("header: %v: %w", err, ErrCorrupt)
	}
	return &h, nil
}

func (h *header) validate() error {
	if h.KDF != kdfArgon2id {
		return fmt.Errorf("unsupported kdf %q", h.KDF)
	}
	if err := h.params().validate(); err != nil {
		return err
	}
	if len(h.Salt) != saltSize {
		return fmt.Errorf("kdf salt is %d bytes, want %d", len(h.Salt), saltSize)
	}
	seen := map[string]bool{}
	for i, s := range h.Slots {
		if err := s.validate(); err != nil {
			return fmt.Errorf("slot %d: %v", i, err)
		}
		if seen[s.Type] {
			return fmt.Errorf("slot %d: duplicate %s slot", i, s.Type)
		}
		seen[s.Type] = true
	}
	if !seen[slotPassphrase] {
		return errors.New("no passphrase slot")
	}
	return nil
}

func (s *slot) validate() error {
	switch {
	case s.Type == slotPassphrase && s.Salt != nil:
		return errors.New("passphrase slot has its own salt")
	case s.Type == slotKeyFile && len(s.Salt) != saltSize:
		return fmt.Errorf("key file salt is %d bytes, want %d", len(s.Salt), saltSize)
	case s.Type != slotPassphrase && s.Type != slotKeyFile:
		return fmt.Errorf("unknown slot type %q", s.Type)
	case len(s.Nonce) != chacha20poly1305.NonceSizeX:
		return fmt.Errorf("nonce is %d bytes, want %d", len(s.Nonce), chacha20poly1305.NonceSizeX)
	case len(s.Key) != wrappedDataSize:
		return fmt.Errorf("wrapped key is %d bytes, want %d", len(s.Key), wrappedDataSize)
	}
	return nil
}

// marshal encodes h; the exact bytes become the payload's associated data.
func (h *header) marshal() ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	if len(b) > maxHeaderSize {
		return nil, fmt.Errorf("encode header: %d bytes exceeds %d", len(b), maxHeaderSize)
	}
	return b, nil
}

// slot returns the slot of type t, or nil.
func (h *header) slot(t string) *slot {
	for i := range h.Slots {
		if h.Slots[i].Type == t {
			return &h.Slots[i]
		}
	}
	return nil
}

// withSlot returns a copy of h with s replacing any slot of its type.
func (h *header) withSlot(s slot) *header {
	c := *h
	c.Slots = nil
	for _, old := range h.Slots {
		if old.Type != s.Type {
			c.Slots = append(c.Slots, old)
		}
	}
	c.Slots = append(c.Slots, s)
	return &c
}

// newPassphraseHeader returns h (nil: a fresh header) with a new salt, the
// parameters p and a passphrase slot wrapping dataKey. It runs Argon2id.
func newPassphraseHeader(h *header, p KDFParams, passphrase, dataKey []byte) (*header, error) {
	salt, err := randomBytes(saltSize)
	if err != nil {
		return nil, err
	}
	s, err := wrapKey(p.deriveKEK(passphrase, salt), slotPassphrase, dataKey)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = &header{KDF: kdfArgon2id}
	}
	h = h.withSlot(s)
	h.MemoryKiB, h.Time, h.Parallelism, h.Salt = p.MemoryKiB, p.Time, p.Parallelism, salt
	return h, nil
}

// keyFileSlot wraps dataKey under the key file bytes kf.
func keyFileSlot(kf, dataKey []byte) (slot, error) {
	salt, err := randomBytes(saltSize)
	if err != nil {
		return slot{}, err
	}
	kek, err := keyFileKEK(kf, salt)
	if err != nil {
		return slot{}, err
	}
	s, err := wrapKey(kek, slotKeyFile, dataKey)
	s.Salt = salt
	return s, err
}

func keyFileKEK(kf, salt []byte) ([]byte, error) {
	kek, err := hkdf.Key(sha256.New, kf, salt, "airlock vault key file v1", dataKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key file key: %w", err)
	}
	return kek, nil
}

// wrapAD binds a wrapped key to the format version and its slot type.
func wrapAD(slotType string) []byte { return []byte("airlock vault v1 " + slotType) }

func wrapKey(kek []byte, slotType string, dataKey []byte) (slot, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return slot{}, fmt.Errorf("wrap data key: %w", err)
	}
	nonce, err := randomBytes(chacha20poly1305.NonceSizeX)
	if err != nil {
		return slot{}, err
	}
	return slot{Type: slotType, Nonce: nonce, Key: aead.Seal(nil, nonce, dataKey, wrapAD(slotType))}, nil
}

// unwrapKey opens s with kek; a failed tag is ErrWrongPassphrase.
func unwrapKey(kek []byte, s *slot) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	key, err := aead.Open(nil, s.Nonce, s.Key, wrapAD(s.Type))
	if err != nil {
		return nil, fmt.Errorf("%s slot: %w", s.Type, ErrWrongPassphrase)
	}
	return key, nil
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random bytes: %w", err)
	}
	return b, nil
}
