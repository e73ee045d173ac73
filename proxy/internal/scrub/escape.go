package scrub

import (
	"bytes"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON escapes
//
// An upstream that echoes a secret inside a JSON string may escape any of
// its bytes: "\/" (PHP), "\u0026" for "&" (Go's HTML-safe encoder), "\u00e9"
// or "\u00E9" for "é" (ensure_ascii), or every byte as \u00XX. Forms cannot
// list these spellings (each byte literal or escaped is 2^n of them), so
// the Replacer matches every form through a decoder instead: at a
// candidate position it follows the form byte by byte, taking a byte
// either literally or from a JSON escape that decodes to it, and keeps the
// set of form offsets reachable at each input offset (an NFA simulation:
// linear in the input, no backtracking an upstream could make exponential).
//
// A \uXXXX escape decodes to the UTF-8 encoding of its code point
// (surrogate pairs combined), and an escape below \u0100 also to the
// single byte XX, so a secret of arbitrary bytes read as Latin-1 is
// matched too. Hex digits are matched in either case.

// maxEscape is how many input bytes one form byte may take at most
// (\u00XX); it bounds a match: 6 × the form's length.
const maxEscape = 6

// shortEsc maps the byte after a backslash to what a two-byte JSON
// escape decodes to; -1: not a short escape.
var shortEsc = func() (t [256]int16) {
	for i := range t {
		t[i] = -1
	}
	for c, d := range map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'} {
		t[c] = int16(d)
	}
	return t
}()

// hexVal is the value of a hex digit of either case, or -1.
func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// hex4 parses four hex digits, or returns -1.
func hex4(b []byte) int {
	v := 0
	for _, c := range b[:4] {
		d := hexVal(c)
		if d < 0 {
			return -1
		}
		v = v<<4 | d
	}
	return v
}

// hexPrefix reports whether b (shorter than a full escape) may still
// become one: it is "\u" followed by hex digits, cut short.
func hexPrefix(b []byte) bool {
	for i, c := range b {
		switch {
		case i == 0 && c != '\\', i == 1 && c != 'u':
			return false
		case i >= 2 && hexVal(c) < 0:
			return false
		}
	}
	return true
}

// form is one spelling of a secret the Replacer looks for, with what the
// decoding match needs to know about it.
type form struct {
	b         []byte
	backslash bool // b holds a '\': the literal fast path does not apply
}

// matchForm returns the length of the longest prefix of b that decodes to
// f (0: none) and whether more bytes after b could still make a match
// (a longer one, or a first one). Most calls end in the literal fast
// path: as long as f holds no backslash, any escaped spelling agrees with
// the literal one up to the first '\' in b.
func matchForm(b []byte, f *form) (m int, grow bool) {
	if f.backslash {
		return decodeMatch(b, f.b, 0)
	}
	l := commonPrefix(b, f.b)
	switch {
	case l == len(f.b):
		return l, false
	case l == len(b):
		return 0, true
	case b[l] != '\\':
		return 0, false
	}
	return decodeMatch(b, f.b, l)
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// ringSize is a power of two above the longest step of the decoder (a
// surrogate pair, 12 bytes).
const ringSize = 16

// decodeMatch runs the decoding NFA from input offset k0, form offset
// k0 (b[:k0] == f[:k0] literally).
func decodeMatch(b, f []byte, k0 int) (m int, grow bool) {
	words := (len(f) + 1 + 63) / 64
	var stack [ringSize * 4]uint64
	ring := stack[:]
	if words > 4 {
		ring = make([]uint64, ringSize*words)
	}
	slot := func(p int) []uint64 { s := (p & (ringSize - 1)) * words; return ring[s : s+words] }
	maxp := k0
	set := func(p, k int) {
		slot(p)[k/64] |= 1 << (k % 64)
		maxp = max(maxp, p)
	}
	set(k0, k0)
	var enc [utf8.UTFMax]byte
	for p := k0; p <= maxp; p++ {
		s := slot(p)
		for w := range s {
			for s[w] != 0 {
				bit := s[w] & -s[w]
				s[w] &^= bit
				k := w*64 + bits.TrailingZeros64(bit)
				if k == len(f) {
					m = p // p only grows: the last is the longest
					continue
				}
				if p == len(b) {
					grow = true
					continue
				}
				if b[p] == f[k] {
					set(p+1, k+1)
				}
				if b[p] != '\\' {
					continue
				}
				if p+1 == len(b) {
					grow = true
					continue
				}
				if d := shortEsc[b[p+1]]; d >= 0 && byte(d) == f[k] {
					set(p+2, k+1)
				}
				if b[p+1] != 'u' {
					continue
				}
				if p+6 > len(b) {
					grow = grow || hexPrefix(b[p:])
					continue
				}
				cp := hex4(b[p+2:])
				switch {
				case cp < 0:
				case utf16.IsSurrogate(rune(cp)):
					if p+12 > len(b) {
						grow = grow || hexPrefix(b[p+6:])
						continue
					}
					if b[p+6] != '\\' || b[p+7] != 'u' {
						continue
					}
					r := utf16.DecodeRune(rune(cp), rune(hex4(b[p+8:])))
					if r == utf8.RuneError {
						continue
					}
					n := utf8.EncodeRune(enc[:], r)
					if bytes.HasPrefix(f[k:], enc[:n]) {
						set(p+12, k+n)
					}
				default:
					if cp < 0x100 && byte(cp) == f[k] {
						set(p+6, k+1)
					}
					if cp >= 0x80 {
						n := utf8.EncodeRune(enc[:], rune(cp))
						if bytes.HasPrefix(f[k:], enc[:n]) {
							set(p+6, k+n)
						}
					}
				}
			}
		}
	}
	return m, grow
}
