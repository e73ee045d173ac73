package vault

import (
	"errors"
	"os"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the file parser and unlock path. It
// must never panic; any file that opens must hold exactly the fixture data
// (the only content that authenticates under the fixture's keys). Seeds:
// testdata/fixture.vault and testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	good, err := os.ReadFile(fixtureVault)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-checksumSize])
	f.Add(hostileFile(hostileHeader("8192", "1", "1", goodSalt, goodSlots), 0))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := openRaw("fuzz.vault", raw, Unlock{KeyFile: fixtureKey})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("unexpected error class: %v", err)
			}
			assertNoSecret(t, err.Error())
			return
		}
		assertData(t, v.Snapshot(), fixtureData())
	})
}

// FuzzDecodePayload checks the decoder of authenticated plaintext: no
// panic, and what decodes re-encodes to an equivalent Data.
func FuzzDecodePayload(f *testing.F) {
	pt, err := encodePayload(fixtureData())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pt)
	f.Add([]byte(`{"credentials":[{"path":"a","kind":"","value":null}],"agents":null,"system":{"x":"AA=="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodePayload(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		again, err := encodePayload(d)
		if err != nil {
			t.Fatalf("decoded data does not re-encode: %v", err)
		}
		d2, err := decodePayload(again)
		if err != nil {
			t.Fatalf("re-encoded data does not decode: %v", err)
		}
		assertData(t, d2, d)
	})
}
