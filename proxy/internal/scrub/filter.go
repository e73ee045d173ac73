package scrub

import (
	"unicode/utf16"
	"unicode/utf8"
)

// The Replacer's filters (first, pairs, inside) must hold for every
// spelling the decoding match accepts, not only for the literal form. A
// spelling is a sequence of pieces, one per form byte (or per UTF-8
// character), each piece a sequence of byte classes: a literal byte, or a
// hex digit in either case. Enumerating classes, not spellings, keeps
// this linear in the form.

// class is a byte, or the two cases of a hex digit.
type class [2]byte

func lit(c byte) class { return class{c, c} }

func hexClass(d int) class {
	const lower, upper = "0123456789abcdef", "0123456789ABCDEF"
	return class{lower[d], upper[d]}
}

// piece is one way to spell f[k:k+n].
type piece struct {
	cls []class
	n   int
}

func uEscape(cls []class, v int) []class {
	cls = append(cls, lit('\\'), lit('u'))
	for sh := 12; sh >= 0; sh -= 4 {
		cls = append(cls, hexClass(v>>sh&15))
	}
	return cls
}

// pieces lists every way the decoder may spell the bytes at f[k].
func pieces(f []byte, k int) []piece {
	c := f[k]
	ps := []piece{{cls: []class{lit(c)}, n: 1}, {cls: uEscape(nil, int(c)), n: 1}}
	for e := range 256 {
		if shortEsc[e] == int16(c) {
			ps = append(ps, piece{cls: []class{lit('\\'), lit(byte(e))}, n: 1})
		}
	}
	if r, size := utf8.DecodeRune(f[k:]); size > 1 && r != utf8.RuneError {
		if r < 0x10000 {
			ps = append(ps, piece{cls: uEscape(nil, int(r)), n: size})
		} else {
			hi, lo := utf16.EncodeRune(r)
			ps = append(ps, piece{cls: uEscape(uEscape(nil, int(hi)), int(lo)), n: size})
		}
	}
	return ps
}

func (p *pairSet) addClasses(a, b class) {
	for _, x := range a {
		for _, y := range b {
			p.add(x, y)
		}
	}
}

// addFilters adds f's spellings to the filters: first bytes, first
// pairs, and every pair within the first minLen bytes of a spelling (a
// piece at form offset k starts at input offset k or later, so the pieces
// starting below minLen cover those bytes).
func (r *Replacer) addFilters(f []byte, minLen int) {
	for k := 0; k < len(f) && k < minLen; k++ {
		for _, pc := range pieces(f, k) {
			for j := 1; j < len(pc.cls); j++ {
				r.inside.addClasses(pc.cls[j-1], pc.cls[j])
				if k == 0 && j == 1 {
					r.pairs.addClasses(pc.cls[0], pc.cls[1])
				}
			}
			if k == 0 {
				for _, x := range pc.cls[0] {
					r.first[x] = true
				}
			}
			if next := k + pc.n; next < len(f) {
				last := pc.cls[len(pc.cls)-1]
				for _, start := range []class{lit(f[next]), lit('\\')} {
					r.inside.addClasses(last, start)
					if k == 0 && len(pc.cls) == 1 {
						r.pairs.addClasses(last, start)
					}
				}
			}
		}
	}
}
