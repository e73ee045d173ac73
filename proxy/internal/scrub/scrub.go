// Package scrub replaces echoes of a secret in response headers and bodies:
// every encoding airlock knows of (raw, base64 at each offset, URL-encoded,
// hex in either case, and each of these JSON-escaped in any mix of literal
// and escaped bytes), streaming, without buffering a whole body. Both doors
// use it. It also holds the relay's checks that keep a secret from being
// echoed in pieces ([StripRange], [RefusePartial]) or under a compression
// layer the scrubber cannot see through ([RefuseCompressed]).
package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"unsafe"
)

// MinLen is the shortest form of a secret the scrubber replaces:
// replacing every occurrence of a 3-byte string would corrupt bodies and
// protect nothing (such a secret is guessable anyway).
const MinLen = 6

// Forms returns the forms of secret an upstream may echo: raw;
// base64 (standard and URL alphabets, padded and not, and the two
// alignment-shifted encodings that appear when the secret sits inside a
// longer base64 payload); query- and path-escaped; hex, lower and upper
// case. Every form is also matched JSON-escaped (see [Replacer]). extra values (e.g. the
// full injected basic-auth value) are added raw and in base64. Forms shorter
// than MinLen are dropped; the result is deduplicated.
func Forms(secret []byte, extra ...[]byte) [][]byte {
	var forms [][]byte
	add := func(f []byte) {
		if len(f) >= MinLen && !slices.ContainsFunc(forms, func(g []byte) bool { return bytes.Equal(f, g) }) {
			forms = append(forms, f)
		}
	}
	for _, v := range append([][]byte{secret}, extra...) {
		if len(v) < MinLen {
			continue
		}
		add(v)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			add([]byte(enc.EncodeToString(v)))
		}
		for shift := 1; shift <= 2; shift++ {
			add(shiftedBase64(base64.RawStdEncoding, v, shift))
			add(shiftedBase64(base64.RawURLEncoding, v, shift))
		}
		add([]byte(url.QueryEscape(string(v))))
		add([]byte(url.PathEscape(string(v))))
		add([]byte(hex.EncodeToString(v)))
		add(bytes.ToUpper([]byte(hex.EncodeToString(v))))
	}
	return forms
}

// shiftedBase64 is the part of the base64 encoding of v that does not
// depend on the shift bytes before it or the bytes after it, when v starts
// shift bytes (1 or 2) into a 3-byte group.
func shiftedBase64(enc *base64.Encoding, v []byte, shift int) []byte {
	buf := append(make([]byte, shift, shift+len(v)), v...)
	s := enc.EncodeToString(buf)
	skip := shift + 1 // chars mixing shift bytes with v's first byte
	end := len(s)
	if len(buf)%3 != 0 {
		end-- // the last char mixes v's end with what follows
	}
	if end <= skip {
		return nil
	}
	return []byte(s[skip:end])
}

// Replacer replaces every occurrence of its forms, leftmost first and the
// longest form at a position, with repl. A form is matched in any JSON
// escaping of its bytes too (escape.go). It is immutable and shared by the
// readers of one response.
type Replacer struct {
	forms  [][]byte // longest first
	fs     []form   // forms, as the decoding match reads them
	first  [256]bool
	pairs  pairSet // the first two bytes of each spelling of a form (filter.go)
	inside pairSet // every pair within the first minLen bytes of a spelling
	minLen int
	maxLen int // the longest spelling: maxEscape × the longest form
	repl   []byte
}

func NewReplacer(forms [][]byte, repl []byte) *Replacer {
	r := &Replacer{forms: slices.Clone(forms), repl: repl, minLen: math.MaxInt}
	slices.SortStableFunc(r.forms, func(a, b []byte) int { return len(b) - len(a) })
	for _, f := range r.forms {
		r.fs = append(r.fs, form{b: f, backslash: bytes.IndexByte(f, '\\') >= 0})
		r.maxLen = max(r.maxLen, maxEscape*len(f))
		r.minLen = min(r.minLen, len(f))
	}
	for _, f := range r.forms {
		r.addFilters(f, r.minLen)
	}
	return r
}

// Scan appends the scrubbed form of buf to out. Unless final, it stops
// before a suffix of buf that could still grow into a (longer) match; that
// suffix, buf[used:], is shorter than the longest spelling of a form (maxLen) and must be scanned
// again with the bytes that follow it. n counts replacements.
func (r *Replacer) Scan(out, buf []byte, final bool) (_ []byte, used, n int) {
	start, i := 0, 0
	for {
		at, m := r.next(buf, i, final)
		if m == 0 {
			i = at
			break
		}
		out = append(append(out, buf[start:at]...), r.repl...)
		i = at + m
		start, n = i, n+1
	}
	return append(out, buf[start:i]...), i, n
}

// next finds the first form in buf[i:]: its position and length, or, with
// length 0, where scanning must stop (the end, or unless final, a tail that
// more bytes could still turn into a form).
//
// It skips like Wu-Manber with a yes/no table: a form starting at s fills
// buf[s:s+minLen], so when the pair ending that window occurs nowhere in
// the first minLen bytes of any form, no form starts at s..s+minLen-2 and
// the Scan moves on by minLen-1. In text that shares few pairs with the
// secret's forms, most bytes are never looked at.
func (r *Replacer) next(buf []byte, i int, final bool) (at, m int) {
	for w := r.minLen; i+w <= len(buf); {
		if !r.inside.has(buf[i+w-2], buf[i+w-1]) {
			i += w - 1
			continue
		}
		if m, stop := r.candidate(buf, i, final); m > 0 || stop {
			return i, m
		}
		i++
	}
	for ; i < len(buf); i++ { // the last minLen-1 bytes: only a form's start
		if m, stop := r.candidate(buf, i, final); m > 0 || stop {
			return i, m
		}
	}
	return len(buf), 0
}

// candidate checks for a form at buf[i]: its length, or stop when, unless
// final, the bytes so far could still grow into a longer form.
func (r *Replacer) candidate(buf []byte, i int, final bool) (m int, stop bool) {
	if !r.first[buf[i]] || (i+1 < len(buf) && !r.pairs.has(buf[i], buf[i+1])) {
		return 0, false
	}
	rest := buf[i:]
	m, grow := r.matchAt(rest)
	if !final && grow && len(rest) < r.maxLen {
		return 0, true
	}
	return m, false
}

// ReplaceAll scrubs a complete buffer; without an echo it returns buf
// itself, unallocated.
func (r *Replacer) ReplaceAll(buf []byte) ([]byte, int) {
	at, m := r.next(buf, 0, true)
	if m == 0 {
		return buf, 0
	}
	out := append(make([]byte, 0, len(buf)+len(r.repl)), buf[:at]...)
	out, _, n := r.Scan(out, buf[at:], true) // no form before at
	return out, n
}

// matchAt returns the length of the longest spelling of a form at the
// start of b, or 0, and whether bytes after b could still make one (or a
// longer one).
func (r *Replacer) matchAt(b []byte) (m int, grow bool) {
	for i := range r.fs {
		f := &r.fs[i]
		if b[0] != f.b[0] && b[0] != '\\' {
			continue
		}
		n, g := matchForm(b, f)
		m, grow = max(m, n), grow || g
	}
	return m, grow
}

// ReplaceString scrubs a complete value (a header).
func (r *Replacer) ReplaceString(s string) (string, int) {
	// The search only reads: it runs on s's own bytes, so a value without
	// an echo (nearly every header) costs no copy and no allocation.
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	at, m := r.next(b, 0, true)
	if m == 0 {
		return s, 0
	}
	out := append(make([]byte, 0, len(s)+len(r.repl)), b[:at]...)
	out, _, n := r.Scan(out, b[at:], true) // appends to out, never writes to b
	return string(out), n
}

// ScrubHeader scrubs every value of h in place and counts replacements.
func (r *Replacer) ScrubHeader(h http.Header) int {
	total := 0
	for _, vs := range h {
		for i, v := range vs {
			if nv, n := r.ReplaceString(v); n > 0 {
				vs[i], total = nv, total+n // vs shares its array with h's value
			}
		}
	}
	return total
}

// ReadSize is how much a Reader reads from upstream at a time.
const ReadSize = 32 << 10

// Reader streams src with every form replaced. Between reads it keeps
// only the tail that could still become a match (shorter than the longest
// form), so bodies are never buffered whole and whatever is safe is
// returned at once (SSE events arrive one by one).
type Reader struct {
	src    io.Reader
	r      *Replacer
	in     []byte // the kept tail, then fresh bytes
	out    []byte // scrubbed bytes not yet returned
	off    int    // read position in out
	err    error  // sticky error of src
	onEcho func(n int)
	filled bool // the last read filled in: grow before the next (adaptive.go)
	// released: Release ran (in and out are nil when parked, too)
	released bool
}

func NewReader(src io.Reader, r *Replacer, onEcho func(int)) *Reader {
	// Buffers are pooled and released on Close (fast.go); they start
	// small and grow with the stream (adaptive.go).
	in, out := startBuffers(r.maxLen)
	return &Reader{src: src, r: r, in: in, out: out, onEcho: onEcho}
}

func (s *Reader) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.fill()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// fill reads once from src and scrubs what can be decided.
func (s *Reader) fill() {
	s.out, s.off = s.out[:0], 0
	if s.filled {
		s.grow() // the last read filled the buffer: a bulk body, not events
	}
	if s.in == nil { // parked (adaptive.go)
		s.in = smallBuffer()
	}
	lent := s.out == nil || s.lendOut() // a stream waits for its next event without it
	room := cap(s.in) - len(s.in)
	m, err := s.src.Read(s.in[len(s.in):cap(s.in)])
	s.in = s.in[:len(s.in)+m]
	s.filled = m == room
	if lent {
		s.out = smallBuffer()
	}
	out, used, n := s.r.Scan(s.out, s.in, err == io.EOF)
	s.out = out
	s.in = s.in[:copy(s.in, s.in[used:])]
	if err != nil {
		// A broken stream: drop the undecided tail rather than hand the
		// agent a partial secret.
		s.in = s.in[:0]
	}
	if n > 0 && s.onEcho != nil {
		s.onEcho(n)
	}
	s.err = err
}
