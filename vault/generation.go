package vault

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Generation counter
//
// The payload carries a generation that every save increments (Create
// writes 1; files written before the counter existed read as 0). It is
// inside the AEAD ciphertext, so it cannot be edited without the data key:
// an older copy of the file always has a lower generation. A [Vault]
// refuses to re-read (Reload, or the re-read that starts Update) a file
// whose generation is lower than the one it holds, so copying an old
// airlock.vault back (from before `agent rotate`) cannot revive a revoked
// token in a running serve. A process that opens the file fresh has
// nothing to compare with; the CLI keeps the last generation it saw in the
// home for that ([Vault.Generation]).

// ErrRollback is returned (wrapped) by Reload and Update when the file on
// disk is older than the vault already loaded: its generation is lower.
// The loaded contents stay in force.
var ErrRollback = errors.New("vault file is older than the one loaded (its generation went backwards)")

// Generation is the generation of the loaded contents: 0 for a file from
// before the counter, else the number of saves since Create plus one.
func (v *Vault) Generation() uint64 { return v.gen.Load() }

// OnSave sets fn to be called with the new generation after every
// successful save by this Vault (nil: none). The CLI uses it to remember
// the newest generation it wrote.
func (v *Vault) OnSave(fn func(gen uint64)) {
	if fn == nil {
		v.onSave.Store(nil)
		return
	}
	v.onSave.Store(&fn)
}

func (v *Vault) saved(gen uint64) {
	if fn := v.onSave.Load(); fn != nil {
		(*fn)(gen)
	}
}

// checkGeneration refuses a file read back whose generation is below the
// one held. Callers hold mu.
func (v *Vault) checkGeneration(gen uint64) error {
	if held := v.gen.Load(); gen < held {
		return fmt.Errorf("generation %d on disk, %d loaded: %w", gen, held, ErrRollback)
	}
	return nil
}

// contentSum hashes a payload without its generation, so a save that
// changes nothing else (a passphrase change re-encrypts the payload) is
// not reported as a change by Reload. encodePayloadGen writes the
// generation as the last member of the top-level object; a "generation"
// key inside a value (metadata) is never followed by digits and the
// closing brace of the payload.
func contentSum(pt []byte) [32]byte {
	const key = `,"generation":`
	if i := bytes.LastIndex(pt, []byte(key)); i >= 0 && len(pt) > i+len(key)+1 && pt[len(pt)-1] == '}' &&
		allDigits(pt[i+len(key):len(pt)-1]) {
		h := sha256.New()
		h.Write(pt[:i])
		h.Write([]byte("}"))
		var sum [32]byte
		h.Sum(sum[:0])
		return sum
	}
	return sha256.Sum256(pt)
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
