package scrub

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// filterSum hashes a Replacer's filters (first bytes, first pairs, inner
// pairs) and its bounds.
func filterSum(r *Replacer) string {
	h := sha256.New()
	for _, b := range r.first {
		if b {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
	}
	for _, set := range []*pairSet{&r.pairs, &r.inside} {
		_ = binary.Write(h, binary.LittleEndian, set[:])
	}
	_ = binary.Write(h, binary.LittleEndian, [2]int64{int64(r.minLen), int64(r.maxLen)})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// TestFiltersUnchanged pins the filters NewReplacer builds for secrets
// whose bytes take every kind of JSON spelling (plain, short escape, \u,
// two- to four-byte UTF-8, a surrogate pair): a faster build must build
// the same filters. The sums were taken from the build before it was made
// allocation-free (the FuzzScrubberEscaped checks say the filters are
// right; this says they did not change).
func TestFiltersUnchanged(t *testing.T) {
	for _, tc := range []struct{ name, secret, want string }{
		{"plain", "sk-proj-4f0c2a77e1d94b8e0a1b2c3d4e5f6a7b", "cec856edac0d5426"},
		{"url and base64 bytes", testSecret, "c379b71c0d82b1b8"},
		{"short escapes", "ab\"c\\d/e\bf\fg\nh\ri\tj-klmnop", "c8fa189255bf5b09"},
		{"control bytes", "\x01\x02secret\x1f\x7fvalue-xyz", "0a33dc4bb37a3037"},
		{"utf-8", "clé-été-ß-€-日本語-🔑-tail", "7bd0b586493c7cad"},
		{"rune first", "🔑🔑-secret-value", "1c921eaca7b68a2b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := filterSum(NewReplacer(Forms([]byte(tc.secret)), []byte("[REDACTED]")))
			if got != tc.want {
				t.Errorf("filters of %q: sum %s, want %s", tc.secret, got, tc.want)
			}
		})
	}
}

// BenchmarkNewReplacer builds the Replacer of a typical API key: once per
// credential and rule for a static key, once per live token for oauth2
// and AWS credentials.
func BenchmarkNewReplacer(b *testing.B) {
	secret := []byte("sk-proj-4f0c2a77e1d94b8e0a1b2c3d4e5f6a7b")
	b.ReportAllocs()
	for b.Loop() {
		NewReplacer(Forms(secret), []byte("[REDACTED:openai/api-key]"))
	}
}
