package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// withChecksum replaces the trailing SHA-256 of raw (in place) so that a
// modification reaches the AEAD checks.
func withChecksum(raw []byte) []byte {
	sum := sha256.Sum256(raw[:len(raw)-checksumSize])
	copy(raw[len(raw)-checksumSize:], sum[:])
	return raw
}

// openBytes opens raw as if read from a file in dir.
func openBytes(t testing.TB, dir string, raw []byte, u Unlock) (*Vault, error) {
	t.Helper()
	return openRaw(filepath.Join(dir, "t.vault"), raw, u)
}

// TestFlipEveryByte flips each byte of the fixture, once leaving the
// checksum stale (accidental damage: always ErrCorrupt, no KDF) and once
// recomputing it (tampering: the AEAD tags must catch it; key-file unlock
// keeps this cheap).
func TestFlipEveryByte(t *testing.T) {
	good := readFile(t, fixtureVault)
	dir := t.TempDir()
	kf := fixtureKey
	for _, fix := range []bool{false, true} {
		t.Run(fmt.Sprintf("recomputed checksum %v", fix), func(t *testing.T) {
			for i := range good {
				for _, mask := range []byte{0x01, 0x80} {
					raw := append([]byte(nil), good...)
					raw[i] ^= mask
					if fix {
						if i >= len(raw)-checksumSize {
							continue // flipping the checksum itself is the other case
						}
						raw = withChecksum(raw)
					}
					_, err := openBytes(t, dir, raw, Unlock{KeyFile: kf})
					switch {
					case err == nil:
						t.Fatalf("byte %d ^ %#x: opened", i, mask)
					case !fix && !errors.Is(err, ErrCorrupt):
						t.Fatalf("byte %d ^ %#x: %v, want ErrCorrupt", i, mask, err)
					case !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassphrase):
						t.Fatalf("byte %d ^ %#x: unexpected error %v", i, mask, err)
					}
				}
			}
		})
	}
}

func TestTruncateEveryLength(t *testing.T) {
	good := readFile(t, fixtureVault)
	dir := t.TempDir()
	for n := range len(good) {
		_, err := openBytes(t, dir, good[:n], Unlock{Passphrase: []byte(fixturePass), KeyFile: fixtureKey})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	_, err := openBytes(t, dir, append(good, 0), Unlock{KeyFile: fixtureKey})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("one byte appended: %v, want ErrCorrupt", err)
	}
}

// TestSwappedHeader splices the header of a re-keyed copy onto the old
// payload (and vice versa): the header is the payload's associated data.
func TestSwappedHeader(t *testing.T) {
	v := openFixture(t)
	old := readFile(t, v.Path())
	if err := v.ChangePassphrase([]byte("other")); err != nil {
		t.Fatal(err)
	}
	cur := readFile(t, v.Path())
	split := func(raw []byte) (hdr, rest []byte) {
		end := preambleSize + int(binary.BigEndian.Uint32(raw[len(magic)+2:]))
		return raw[:end], raw[end:]
	}
	oh, orest := split(old)
	ch, crest := split(cur)
	cases := map[string]struct {
		raw    []byte
		unlock Unlock
	}{
		"new header, old payload": {raw: withChecksum(append(append([]byte(nil), ch...), orest...)), unlock: Unlock{Passphrase: []byte("other")}},
		"old header, new payload": {raw: withChecksum(append(append([]byte(nil), oh...), crest...)), unlock: Unlock{Passphrase: []byte(fixturePass)}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := openBytes(t, t.TempDir(), tc.raw, tc.unlock); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
}

// hostileFile builds a vault whose header is hdr (raw JSON), with a valid
// checksum, and claims the given header length.
func hostileFile(hdr string, claimedLen uint32) []byte {
	raw := []byte(magic)
	raw = binary.BigEndian.AppendUint16(raw, formatVersion)
	raw = binary.BigEndian.AppendUint32(raw, claimedLen)
	raw = append(raw, hdr...)
	raw = append(raw, make([]byte, payloadNonce+payloadTagSize+checksumSize)...)
	return withChecksum(raw)
}

func hostileHeader(mem, tm, par, salt string, slots string) string {
	return fmt.Sprintf(`{"kdf":"argon2id","memory_kib":%s,"time":%s,"parallelism":%s,"salt":%s,"slots":%s}`,
		mem, tm, par, salt, slots)
}

const (
	goodSalt  = `"AAAAAAAAAAAAAAAAAAAAAA=="` // 16 bytes
	goodSlots = `[{"type":"passphrase","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]`
)

func TestHostileHeaderRefusedFast(t *testing.T) {
	h := func(mem, tm, par string) string { return hostileHeader(mem, tm, par, goodSalt, goodSlots) }
	cases := map[string]struct {
		hdr     string
		claimed int64 // -1: the real length
		message string
	}{
		"memory 4 TiB":          {hdr: h("4294967295", "1", "1"), message: "memory"},
		"memory 2 GiB":          {hdr: h("2097152", "1", "1"), message: "memory"},
		"memory 1 KiB":          {hdr: h("1", "1", "1"), message: "memory"},
		"memory negative":       {hdr: h("-1", "1", "1"), message: "malformed"},
		"time huge":             {hdr: h("8192", "4294967295", "1"), message: "time"},
		"time zero":             {hdr: h("8192", "0", "1"), message: "time"},
		"parallelism 255":       {hdr: h("8192", "1", "255"), message: "parallelism"},
		"parallelism overflow":  {hdr: h("8192", "1", "300"), message: "malformed"},
		"parallelism zero":      {hdr: h("8192", "1", "0"), message: "parallelism"},
		"salt short":            {hdr: hostileHeader("8192", "1", "1", `"AAAA"`, goodSlots), message: "salt"},
		"salt long":             {hdr: hostileHeader("8192", "1", "1", `"`+strings.Repeat("A", 40000)+`"`, goodSlots), message: "salt"},
		"no slots":              {hdr: hostileHeader("8192", "1", "1", goodSalt, `[]`), message: "no passphrase slot"},
		"duplicate slot":        {hdr: hostileHeader("8192", "1", "1", goodSalt, `[`+goodSlots[1:len(goodSlots)-1]+`,`+goodSlots[1:]), message: "duplicate"},
		"unknown slot":          {hdr: hostileHeader("8192", "1", "1", goodSalt, strings.Replace(goodSlots, "passphrase", "tpm", 1)), message: "unknown slot"},
		"short wrapped key":     {hdr: hostileHeader("8192", "1", "1", goodSalt, strings.Replace(goodSlots, `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`, `"AAAA"`, 1)), message: "wrapped key"},
		"other kdf":             {hdr: strings.Replace(h("8192", "1", "1"), "argon2id", "scrypt", 1), message: "kdf"},
		"unknown field":         {hdr: strings.Replace(h("8192", "1", "1"), `{"kdf"`, `{"x":1,"kdf"`, 1), message: "malformed"},
		"trailing data":         {hdr: h("8192", "1", "1") + "{}", message: "trailing"},
		"not json":              {hdr: "\x00\xff", message: "malformed"},
		"length 4 GiB":          {hdr: h("8192", "1", "1"), claimed: 0xFFFFFFFF, message: "header length"},
		"length past 64 KiB":    {hdr: h("8192", "1", "1"), claimed: maxHeaderSize + 1, message: "header length"},
		"length past the file":  {hdr: h("8192", "1", "1"), claimed: 60000, message: "exceeds the file"},
		"length zero":           {hdr: h("8192", "1", "1"), claimed: 0, message: "header length"},
		"deeply nested garbage": {hdr: strings.Repeat("[", 30000), message: "malformed"},
	}
	dir := t.TempDir()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			claimed := uint32(len(tc.hdr))
			if tc.claimed != 0 || name == "length zero" {
				claimed = uint32(tc.claimed)
			}
			raw := hostileFile(tc.hdr, claimed)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := openBytes(t, dir, raw, Unlock{Passphrase: []byte("pw")})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("Open: %v, want ErrCorrupt mentioning %q", err, tc.message)
			}
			if elapsed > 100*time.Millisecond {
				t.Fatalf("refusal took %v", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
				t.Fatalf("refusal allocated %d bytes", alloc)
			}
		})
	}
}

// TestBoundaryKDFAccepted makes sure the bounds are not off by one: the
// fixture's FastKDF is the minimum and must open.
func TestBoundaryKDFAccepted(t *testing.T) {
	if err := FastKDF.validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultKDF.validate(); err != nil {
		t.Fatal(err)
	}
	max := KDFParams{MemoryKiB: maxMemoryKiB, Time: maxTime, Parallelism: maxParallelism}
	if err := max.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestOversizedFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.vault")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = Open(path, Unlock{Passphrase: []byte("pw")})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("Open: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("refusal allocated %d bytes", alloc)
	}
}
