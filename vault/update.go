package vault

import "fmt"

// Update locks the file, re-reads it, applies fn to a deep copy of the
// current data and saves atomically. If fn returns an error, nothing is
// saved and that error is returned unchanged. Two processes updating the
// same vault never lose each other's change. On a save error the old file
// stays in place and the snapshot is unchanged.
func (v *Vault) Update(fn func(d *Data) error) error {
	return v.modify(func() (*header, *Data, error) {
		d := v.Snapshot().Clone()
		if err := fn(d); err != nil {
			return nil, nil, err
		}
		return v.hdr, d, nil
	})
}

// modify holds mu and the file lock, re-reads the file, and saves the
// header and data change returns; an error from change is returned as is
// and nothing is saved. Update and rewrap are its two callers.
func (v *Vault) modify(change func() (*header, *Data, error)) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	unlock, err := lockFile(v.path)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := v.readCurrent(); err != nil {
		return fmt.Errorf("update vault %s: %w", v.path, err)
	}
	hdr, d, err := change()
	if err != nil {
		return err
	}
	return v.saveLocked(hdr, d)
}

// saveLocked seals d under hdr and replaces the file. Callers hold mu and
// the file lock.
func (v *Vault) saveLocked(hdr *header, d *Data) error {
	gen := v.gen.Load() + 1 // every save (generation.go)
	pt, raw, saved, err := v.seal(hdr, d, gen)
	if err != nil {
		return fmt.Errorf("save vault %s: %w", v.path, err)
	}
	if err := writeAtomic(v.path, raw); err != nil {
		return err
	}
	v.adopt(hdr, saved, raw, pt, gen)
	removeStaleTemps(v.path)
	v.saved(gen)
	return nil
}

// Reload re-reads the file with the in-memory data key, so it keeps working
// after another process changed the passphrase. changed reports whether the
// content differs from the current snapshot. An unreadable or tampered file
// returns an error and the old snapshot stays in force.
func (v *Vault) Reload() (changed bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	changed, err = v.readCurrent()
	if err != nil {
		return false, fmt.Errorf("reload vault %s: %w", v.path, err)
	}
	return changed, nil
}

// ChangePassphrase re-wraps the data key under a new passphrase (fresh salt,
// the current KDF parameters). The payload is re-encrypted unchanged, since
// the header is its associated data; key-file slots keep working.
func (v *Vault) ChangePassphrase(newPassphrase []byte) error {
	if len(newPassphrase) == 0 {
		return fmt.Errorf("change passphrase of %s: %w", v.path, ErrNoUnlock)
	}
	return v.rewrap(func(h *header) (*header, error) {
		return newPassphraseHeader(h, h.params(), newPassphrase, v.key)
	})
}

// AddKeyFile adds (or replaces) the key-file unlock slot, using the key
// file at path or creating one (mode 0600) if none is there.
func (v *Vault) AddKeyFile(path string) error {
	kf, err := loadOrCreateKeyFile(path)
	if err != nil {
		return fmt.Errorf("add key file to %s: %w", v.path, err)
	}
	s, err := keyFileSlot(kf, v.key)
	if err != nil {
		return fmt.Errorf("add key file to %s: %w", v.path, err)
	}
	return v.rewrap(func(h *header) (*header, error) { return h.withSlot(s), nil })
}

// rewrap re-reads the file under the lock, replaces its header with
// edit(header) and saves the unchanged data.
func (v *Vault) rewrap(edit func(h *header) (*header, error)) error {
	return v.modify(func() (*header, *Data, error) {
		hdr, err := edit(v.hdr)
		if err != nil {
			return nil, nil, fmt.Errorf("rewrap vault %s: %w", v.path, err)
		}
		return hdr, v.Snapshot(), nil
	})
}
