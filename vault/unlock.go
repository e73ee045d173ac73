package vault

import "fmt"

// Unlock names how to unwrap the data key: a passphrase, a key file, or both
// (either one that works is enough; the key file is tried first).
type Unlock struct {
	Passphrase []byte
	KeyFile    string
}

// unlock unwraps the data key of h with u. A wrong passphrase or key file
// is ErrWrongPassphrase; no method at all is ErrNoUnlock.
func (h *header) unlock(u Unlock) ([]byte, error) {
	if len(u.Passphrase) == 0 && u.KeyFile == "" {
		return nil, ErrNoUnlock
	}
	var errs []error
	if u.KeyFile != "" {
		key, err := h.unlockKeyFile(u.KeyFile)
		if err == nil {
			return key, nil
		}
		errs = append(errs, err)
	}
	if len(u.Passphrase) > 0 {
		key, err := h.unlockPassphrase(u.Passphrase)
		if err == nil {
			return key, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 2 {
		return nil, fmt.Errorf("%w; %w", errs[0], errs[1])
	}
	return nil, errs[0]
}

func (h *header) unlockPassphrase(passphrase []byte) ([]byte, error) {
	s := h.slot(slotPassphrase)
	if s == nil { // parseHeader guarantees one; defensive
		return nil, fmt.Errorf("no passphrase slot: %w", ErrCorrupt)
	}
	return unwrapKey(h.params().deriveKEK(passphrase, h.Salt), s)
}

func (h *header) unlockKeyFile(path string) ([]byte, error) {
	s := h.slot(slotKeyFile)
	if s == nil {
		return nil, fmt.Errorf("key file %s: vault has no key file slot: %w", path, ErrWrongPassphrase)
	}
	kf, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	kek, err := keyFileKEK(kf, s.Salt)
	if err != nil {
		return nil, err
	}
	key, err := unwrapKey(kek, s)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}
