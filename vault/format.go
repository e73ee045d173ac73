package vault

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// # Byte layout
//
// A vault file is, with integers big-endian:
//
//	offset   size  field
//	0        8     magic "AIRLOCKV"
//	8        2     format version, 1
//	10       4     header length H, 1..65536 (checked before allocating)
//	14       H     header, a JSON object:
//	               {"kdf":"argon2id","memory_kib":M,"time":T,"parallelism":P,
//	                "salt":<16 bytes b64>,
//	                "slots":[{"type":"passphrase","nonce":<24>,"key":<48>},
//	                         {"type":"keyfile","salt":<16>,"nonce":<24>,"key":<48>}]}
//	14+H     24    payload nonce, random, fresh at every save
//	38+H     C     payload ciphertext, C >= 16: XChaCha20-Poly1305 under the
//	               32-byte data key of the JSON payload (credentials, agents,
//	               system keys), additional data = bytes [0, 14+H)
//	end-32   32    SHA-256 of all preceding bytes
//
// Each slot wraps the random data key with XChaCha20-Poly1305 (additional
// data "airlock vault v1 <type>") under a key-encryption key: for the
// passphrase slot Argon2id(passphrase, salt, T, M, P); for the key-file slot
// HKDF-SHA256(key file's 32 bytes, slot salt, "airlock vault key file v1").
//
// The trailing SHA-256 is not a security boundary (anyone can recompute it;
// the AEAD tags are). It classifies accidental damage — truncation, a flipped
// bit — as [ErrCorrupt] before any key derivation, so an intact file whose
// passphrase tag fails is reported as [ErrWrongPassphrase] and a damaged one
// never is. Header and checksum are checked before Argon2id runs.
const (
	magic          = "AIRLOCKV"
	formatVersion  = 1
	preambleSize   = len(magic) + 2 + 4
	maxHeaderSize  = 64 << 10
	checksumSize   = sha256.Size
	payloadNonce   = chacha20poly1305.NonceSizeX
	payloadTagSize = chacha20poly1305.Overhead
	minFileSize    = preambleSize + 1 + payloadNonce + payloadTagSize + checksumSize
	maxFileSize    = 64 << 20
)

// sealed is a parsed vault file whose header is validated but whose payload
// is still encrypted.
type sealed struct {
	hdr   *header
	ad    []byte // preamble + header bytes: the payload's associated data
	nonce []byte
	ct    []byte
}

// parseFile checks the structure, the header and the checksum of raw. It
// runs no key derivation and allocates nothing proportional to claimed
// lengths.
func parseFile(raw []byte) (*sealed, error) {
	if len(raw) < preambleSize || !bytes.Equal(raw[:len(magic)], []byte(magic)) {
		return nil, fmt.Errorf("not an airlock vault (bad magic): %w", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint16(raw[len(magic):]); v != formatVersion {
		return nil, fmt.Errorf("unsupported format version %d: %w", v, ErrCorrupt)
	}
	if len(raw) < minFileSize {
		return nil, fmt.Errorf("truncated: %d bytes: %w", len(raw), ErrCorrupt)
	}
	hlen := binary.BigEndian.Uint32(raw[len(magic)+2:])
	if hlen == 0 || hlen > maxHeaderSize {
		return nil, fmt.Errorf("header length %d outside [1, %d]: %w", hlen, maxHeaderSize, ErrCorrupt)
	}
	end := preambleSize + int(hlen)
	if len(raw) < end+payloadNonce+payloadTagSize+checksumSize {
		return nil, fmt.Errorf("truncated: header length %d exceeds the file: %w", hlen, ErrCorrupt)
	}
	hdr, err := parseHeader(raw[preambleSize:end])
	if err != nil {
		return nil, err
	}
	body := raw[:len(raw)-checksumSize]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], raw[len(body):]) {
		return nil, fmt.Errorf("checksum mismatch (damaged or truncated): %w", ErrCorrupt)
	}
	return &sealed{hdr: hdr, ad: raw[:end], nonce: raw[end : end+payloadNonce], ct: body[end+payloadNonce:]}, nil
}

// open decrypts the payload with the data key.
func (s *sealed) open(dataKey []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	pt, err := aead.Open(nil, s.nonce, s.ct, s.ad)
	if err != nil {
		return nil, fmt.Errorf("payload fails authentication: %w", ErrCorrupt)
	}
	return pt, nil
}

// sealFile builds a complete vault file: preamble, header, fresh nonce,
// payload ciphertext and checksum.
func sealFile(hdr *header, dataKey, plaintext []byte) ([]byte, error) {
	hb, err := hdr.marshal()
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(dataKey)
	if err != nil {
		return nil, fmt.Errorf("seal payload: %w", err)
	}
	nonce, err := randomBytes(payloadNonce)
	if err != nil {
		return nil, err
	}
	size := preambleSize + len(hb) + payloadNonce + len(plaintext) + payloadTagSize + checksumSize
	if size > maxFileSize {
		return nil, fmt.Errorf("seal payload: vault would be %d bytes, limit %d", size, maxFileSize)
	}
	out := make([]byte, 0, size)
	out = append(out, magic...)
	out = binary.BigEndian.AppendUint16(out, formatVersion)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hb)))
	out = append(out, hb...)
	ad := bytes.Clone(out) // dst and additional data must not overlap
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plaintext, ad)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}
