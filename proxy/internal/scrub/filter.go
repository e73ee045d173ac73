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

// piece is one way to spell f[k:k+n]: the classes cls[:len].
type piece struct {
	cls [12]class // the longest spelling: a surrogate pair, \uXXXX\uXXXX
	len int
	n   int
}

func (p *piece) classes() []class { return p.cls[:p.len] }

// uEscape appends the classes of \uXXXX spelling v.
func (p *piece) uEscape(v int) {
	p.cls[p.len], p.cls[p.len+1] = lit('\\'), lit('u')
	p.len += 2
	for sh := 12; sh >= 0; sh -= 4 {
		p.cls[p.len] = hexClass(v >> sh & 15)
		p.len++
	}
}

// shortFor is the byte after the backslash of the two-byte JSON escape
// of each byte (0: none): shortEsc reversed.
var shortFor = func() (t [256]byte) {
	for e, d := range shortEsc {
		if d >= 0 {
			t[d] = byte(e)
		}
	}
	return t
}()

// pieces lists in ps every way the decoder may spell the bytes at f[k]
// (at most four: the byte, \u00XX, a short escape, the \u escape of the
// character it starts).
func pieces(f []byte, k int, ps *[4]piece) []piece {
	c := f[k]
	ps[0] = piece{len: 1, n: 1}
	ps[0].cls[0] = lit(c)
	ps[1] = piece{n: 1}
	ps[1].uEscape(int(c))
	n := 2
	if e := shortFor[c]; e != 0 {
		ps[n] = piece{len: 2, n: 1}
		ps[n].cls[0], ps[n].cls[1] = lit('\\'), lit(e)
		n++
	}
	if r, size := utf8.DecodeRune(f[k:]); size > 1 && r != utf8.RuneError {
		ps[n] = piece{n: size}
		if r < 0x10000 {
			ps[n].uEscape(int(r))
		} else {
			hi, lo := utf16.EncodeRune(r)
			ps[n].uEscape(int(hi))
			ps[n].uEscape(int(lo))
		}
		n++
	}
	return ps[:n]
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
	var buf [4]piece
	for k := 0; k < len(f) && k < minLen; k++ {
		for i := range pieces(f, k, &buf) {
			pc := &buf[i]
			cls := pc.classes()
			for j := 1; j < len(cls); j++ {
				r.inside.addClasses(cls[j-1], cls[j])
				if k == 0 && j == 1 {
					r.pairs.addClasses(cls[0], cls[1])
				}
			}
			if k == 0 {
				for _, x := range cls[0] {
					r.first[x] = true
				}
			}
			if next := k + pc.n; next < len(f) {
				last := cls[len(cls)-1]
				for _, start := range [...]class{lit(f[next]), lit('\\')} {
					r.inside.addClasses(last, start)
					if k == 0 && len(cls) == 1 {
						r.pairs.addClasses(last, start)
					}
				}
			}
		}
	}
}
