package vault

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CreateOptions configure a new vault.
type CreateOptions struct {
	KDF     KDFParams // zero: DefaultKDF
	KeyFile string    // when set, also wrap the data key with this key file (created if missing)
}

// Vault is an open vault file. It is safe for concurrent use.
type Vault struct {
	path string
	key  []byte // the data key; set once, never changes

	// mu serializes Update, Reload, ChangePassphrase and AddKeyFile in this
	// process (the file lock serializes processes) and guards hdr, fileSum
	// and dataSum.
	mu      sync.Mutex
	hdr     *header  // header of the last file read or written
	fileSum [32]byte // SHA-256 of that file
	dataSum [32]byte // SHA-256 of its plaintext payload, generation left out (contentSum)

	snap   atomic.Pointer[Data]
	loaded atomic.Int64  // unix nanoseconds of the last successful read
	gen    atomic.Uint64 // generation of the snapshot (generation.go); written under mu
	onSave atomic.Pointer[func(gen uint64)]
}

// Create writes a new, empty vault at path (mode 0600) unlocked by
// passphrase and, when opts.KeyFile is set, by that key file too. It fails
// with ErrExists if anything is at path, ErrNoUnlock if passphrase is empty.
func Create(path string, passphrase []byte, opts CreateOptions) (*Vault, error) {
	if len(passphrase) == 0 {
		return nil, fmt.Errorf("create vault %s: %w", path, ErrNoUnlock)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("create vault %s: %w", path, ErrExists)
	}
	p := opts.KDF
	if p == (KDFParams{}) {
		p = DefaultKDF
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("create vault %s: %w", path, err)
	}
	key, err := randomBytes(dataKeySize)
	if err != nil {
		return nil, fmt.Errorf("create vault %s: %w", path, err)
	}
	hdr, err := newPassphraseHeader(nil, p, passphrase, key)
	if err != nil {
		return nil, fmt.Errorf("create vault %s: %w", path, err)
	}
	if opts.KeyFile != "" {
		if hdr, err = addKeyFileSlot(hdr, opts.KeyFile, key); err != nil {
			return nil, fmt.Errorf("create vault %s: %w", path, err)
		}
	}
	v := &Vault{path: path, key: key}
	pt, raw, d, err := v.seal(hdr, newData(), 1)
	if err != nil {
		return nil, fmt.Errorf("create vault %s: %w", path, err)
	}
	unlock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := createExclusive(path, raw); err != nil {
		return nil, err
	}
	v.adopt(hdr, d, raw, pt, 1)
	return v, nil
}

func addKeyFileSlot(hdr *header, keyFile string, dataKey []byte) (*header, error) {
	kf, err := loadOrCreateKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	s, err := keyFileSlot(kf, dataKey)
	if err != nil {
		return nil, err
	}
	return hdr.withSlot(s), nil
}

// Open reads and decrypts the vault at path. Errors wrap ErrNoUnlock,
// ErrWrongPassphrase (intact file, wrong secret), ErrCorrupt, or
// fs.ErrNotExist; a directory at path is refused.
func Open(path string, u Unlock) (*Vault, error) {
	if len(u.Passphrase) == 0 && u.KeyFile == "" {
		return nil, fmt.Errorf("open vault %s: %w", path, ErrNoUnlock)
	}
	raw, err := readVaultFile(path)
	if err != nil {
		return nil, fmt.Errorf("open vault: %w", err)
	}
	v, err := openRaw(path, raw, u)
	if err != nil {
		return nil, fmt.Errorf("open vault %s: %w", path, err)
	}
	return v, nil
}

// openRaw is Open on file bytes already read from path.
func openRaw(path string, raw []byte, u Unlock) (*Vault, error) {
	s, err := parseFile(raw)
	if err != nil {
		return nil, err
	}
	key, err := s.hdr.unlock(u)
	if err != nil {
		return nil, err
	}
	v := &Vault{path: path, key: key}
	pt, d, gen, err := v.decrypt(s)
	if err != nil {
		return nil, err
	}
	v.adopt(s.hdr, d, raw, pt, gen)
	return v, nil
}

// Path is the vault file path.
func (v *Vault) Path() string { return v.path }

// Snapshot returns the current decrypted data. It is shared: do not modify.
func (v *Vault) Snapshot() *Data { return v.snap.Load() }

// LoadedAt is when the file was last read and verified (Open, Reload,
// Update) or written.
func (v *Vault) LoadedAt() time.Time { return time.Unix(0, v.loaded.Load()) }

func (v *Vault) decrypt(s *sealed) (pt []byte, d *Data, gen uint64, err error) {
	if pt, err = s.open(v.key); err != nil {
		return nil, nil, 0, err
	}
	if d, gen, err = decodePayloadGen(pt); err != nil {
		return nil, nil, 0, err
	}
	return pt, d, gen, nil
}

// seal encodes d as generation gen under hdr and returns the plaintext,
// the file bytes and the canonical decoded copy that becomes the snapshot
// once saved.
func (v *Vault) seal(hdr *header, d *Data, gen uint64) (pt, raw []byte, saved *Data, err error) {
	if pt, err = encodePayloadGen(d, gen); err != nil {
		return nil, nil, nil, err
	}
	if raw, err = sealFile(hdr, v.key, pt); err != nil {
		return nil, nil, nil, err
	}
	if saved, err = decodePayload(pt); err != nil {
		return nil, nil, nil, fmt.Errorf("re-read own payload: %w", err)
	}
	return pt, raw, saved, nil
}

// adopt publishes a file just read or written. Callers hold mu (or own v
// exclusively).
func (v *Vault) adopt(hdr *header, d *Data, raw, pt []byte, gen uint64) {
	v.hdr = hdr
	v.gen.Store(gen)
	v.fileSum = sha256.Sum256(raw)
	v.dataSum = contentSum(pt)
	v.snap.Store(d)
	v.loaded.Store(time.Now().UnixNano())
}

// readCurrent reads and decrypts the file with the in-memory data key and
// adopts it. It reports whether the plaintext differs from the previous one.
// Callers hold mu.
func (v *Vault) readCurrent() (changed bool, err error) {
	raw, err := readVaultFile(v.path)
	if err != nil {
		return false, err
	}
	if sha256.Sum256(raw) == v.fileSum {
		v.loaded.Store(time.Now().UnixNano())
		return false, nil
	}
	s, err := parseFile(raw)
	if err != nil {
		return false, err
	}
	pt, d, gen, err := v.decrypt(s)
	if err != nil {
		return false, fmt.Errorf("does not decrypt with the unlocked data key (replaced or damaged): %w", err)
	}
	if err := v.checkGeneration(gen); err != nil {
		return false, err
	}
	prev := v.dataSum
	v.adopt(s.hdr, d, raw, pt, gen)
	return !bytes.Equal(prev[:], v.dataSum[:]), nil
}
