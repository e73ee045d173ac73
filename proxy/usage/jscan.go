package usage

import (
	"bytes"
	"sync"
)

// jscan is an incremental, allocation-light JSON scanner that captures the
// raw bytes of the values at a few fixed object paths ("usage",
// "response.usage", "model", ...) while the document streams past. It never
// holds more than maxCapture bytes per wanted path, whatever the size of the
// document (an embeddings answer can be tens of megabytes), and it does not
// validate: bytes that are not JSON simply capture nothing. The captured
// values are decoded with encoding/json afterwards.
type jscan struct {
	paths [][]string         // wanted object paths, at most maxTrack keys each
	caps  []capture          // one per path
	want  [maxTrack + 1]bool // some path has this many keys
	// deepest is the longest wanted path (at most maxTrack): deeper,
	// only strings and brackets matter
	deepest int

	depth   int // containers open
	isObj   [maxTrack + 1]bool
	keys    [maxTrack + 1][]byte // current key of the object at each depth (bounded)
	keyOK   [maxTrack + 1]bool   // keys[d] is complete and not truncated
	inStr   bool
	esc     bool
	strBuf  []byte // the last string at object level (a key candidate), bounded
	strOver bool
	lastStr bool // the last token at this depth was a string (so ':' makes it a key)

	active    int // index of the capture in progress, -1 none
	capDepth  int // depth of the object holding the captured value
	capScalar bool
	capString bool
}

// capture is one captured value.
type capture struct {
	buf  []byte
	over bool // the value exceeded maxCapture: buf is empty and over is set
	done bool
}

const (
	maxTrack   = 3       // object depth followed for paths
	maxKeyLen  = 48      // longer keys are never wanted
	maxCapture = 1 << 16 // bytes kept per captured value
)

func newScan(paths [][]string) *jscan {
	s := &jscan{paths: paths, caps: make([]capture, len(paths)), active: -1}
	s.setWant()
	return s
}

func (s *jscan) setWant() {
	s.want, s.deepest = [maxTrack + 1]bool{}, 0
	for _, p := range s.paths {
		if len(p) <= maxTrack {
			s.want[len(p)] = len(p) > 0
			s.deepest = max(s.deepest, len(p))
		}
	}
}

// scanPool recycles the scanners of JSON answers (their key and capture
// buffers), so a metered JSON answer allocates none once warm.
var scanPool sync.Pool

// getScan is newScan from the pool.
func getScan(paths [][]string) *jscan {
	s, _ := scanPool.Get().(*jscan)
	if s == nil {
		return newScan(paths)
	}
	s.paths = paths
	s.setWant()
	if len(s.caps) != len(paths) {
		s.caps = make([]capture, len(paths))
	}
	s.reset()
	return s
}

// putScan returns a scanner nobody uses any more; big buffers are dropped.
func putScan(s *jscan) {
	for i := range s.caps {
		if cap(s.caps[i].buf) > 4<<10 {
			s.caps[i].buf = nil
		}
	}
	scanPool.Put(s)
}

// reset prepares the scanner for a new document, keeping its buffers.
func (s *jscan) reset() {
	for i := range s.caps {
		s.caps[i] = capture{buf: s.caps[i].buf[:0]}
	}
	s.depth, s.inStr, s.esc, s.strOver, s.lastStr, s.active = 0, false, false, false, false, -1
	s.strBuf = s.strBuf[:0]
	for i := range s.keys {
		s.keys[i], s.keyOK[i], s.isObj[i] = s.keys[i][:0], false, false
	}
}

// get returns the captured value of path i, or nil.
func (s *jscan) get(i int) []byte {
	c := &s.caps[i]
	if !c.done || c.over {
		return nil
	}
	return c.buf
}

// overflowed reports that path i held a value too large to keep.
func (s *jscan) overflowed(i int) bool { return s.caps[i].over }

// write scans p.
func (s *jscan) write(p []byte) {
	for i := 0; i < len(p); i++ {
		if s.inStr && !s.esc {
			// fast path: the plain bytes of a string, up to its next quote
			// or backslash, in one step
			j := indexQuoteOrEscape(p[i:])
			if j > 0 {
				s.strRun(p[i : i+j])
				i += j - 1
				continue
			}
		}
		if !s.inStr && s.depth > s.deepest && (s.active < 0 || !s.capScalar && !s.capString) {
			// fast path: below the deepest wanted path only quotes and
			// brackets matter (an embeddings vector is megabytes of
			// digits); a captured object or array takes the run at once
			j := indexStructural(p[i:])
			if s.active >= 0 {
				s.capRun(p[i : i+j])
			}
			if i += j; i == len(p) {
				return
			}
		}
		c := p[i]
		if s.active >= 0 {
			s.capByte(c)
		}
		if s.inStr {
			s.strByte(c)
			continue
		}
		switch c {
		case '"':
			s.inStr, s.esc = true, false
			s.strBuf, s.strOver = s.strBuf[:0], false
			s.maybeStart(c)
		case '{', '[':
			s.maybeStart(c)
			s.depth++
			if s.depth <= maxTrack {
				s.isObj[s.depth] = c == '{'
				s.keys[s.depth], s.keyOK[s.depth] = s.keys[s.depth][:0], false
			}
			s.lastStr = false
		case '}', ']':
			if s.active >= 0 && s.capScalar && s.depth == s.capDepth {
				s.endCapture(true)
			}
			if s.depth > 0 {
				s.depth--
			}
			if s.active >= 0 && !s.capScalar && !s.capString && s.depth == s.capDepth {
				s.endCapture(false)
			}
			s.lastStr = false
		case ':':
			if s.lastStr && s.depth >= 1 && s.depth <= maxTrack && s.isObj[s.depth] {
				s.keys[s.depth] = append(s.keys[s.depth][:0], s.strBuf...)
				s.keyOK[s.depth] = !s.strOver
			}
			s.lastStr = false
		case ',':
			if s.active >= 0 && s.capScalar && s.depth == s.capDepth {
				s.endCapture(true)
			}
			if s.depth >= 1 && s.depth <= maxTrack {
				s.keyOK[s.depth] = false
			}
			s.lastStr = false
		case ' ', '\t', '\r', '\n':
			if s.active >= 0 && s.capScalar && s.depth == s.capDepth {
				s.endCapture(true)
			}
		default:
			s.maybeStart(c)
			s.lastStr = false
		}
	}
}

// structural marks the bytes indexStructural stops at.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// indexStructural returns the index of the first quote or bracket in b, or
// len(b).
func indexStructural(b []byte) int {
	for i, c := range b {
		if structural[c] {
			return i
		}
	}
	return len(b)
}

// indexQuoteOrEscape returns the index of the first '"' or '\\' in b, or
// len(b) (strings are most of a document's bytes).
func indexQuoteOrEscape(b []byte) int { return indexEither(b, '"', '\\') }

// indexEither returns the index of the first x or y in b, or len(b): two
// vector searches, the second only up to the first's hit.
func indexEither(b []byte, x, y byte) int {
	n := bytes.IndexByte(b, x)
	if n < 0 {
		n = len(b)
	}
	if m := bytes.IndexByte(b[:n], y); m >= 0 {
		return m
	}
	return n
}

// strRun consumes plain string bytes (no quote, no backslash).
func (s *jscan) strRun(run []byte) {
	if s.depth <= s.deepest { // a key candidate (deeper, no key is wanted)
		if len(s.strBuf)+len(run) > maxKeyLen {
			s.strOver = true
		}
		if room := maxKeyLen - len(s.strBuf); room > 0 {
			s.strBuf = append(s.strBuf, run[:min(room, len(run))]...)
		}
	}
	if s.active >= 0 {
		s.capRun(run)
	}
}

// capRun appends run to the active capture.
func (s *jscan) capRun(run []byte) {
	cp := &s.caps[s.active]
	if !cp.over {
		if len(cp.buf)+len(run) > maxCapture {
			cp.over, cp.buf = true, cp.buf[:0]
		} else {
			cp.buf = append(cp.buf, run...)
		}
	}
}

// strByte consumes one byte inside a string.
func (s *jscan) strByte(c byte) {
	if s.esc {
		s.esc = false
		s.keepStr(c)
		return
	}
	switch c {
	case '\\':
		s.esc = true
		s.strOver = true // escaped keys are never wanted
	case '"':
		s.inStr = false
		s.lastStr = true
		if s.active >= 0 && s.capString && s.depth == s.capDepth {
			s.endCapture(false)
		}
	default:
		s.keepStr(c)
	}
}

func (s *jscan) keepStr(c byte) {
	if len(s.strBuf) < maxKeyLen {
		s.strBuf = append(s.strBuf, c)
	} else {
		s.strOver = true
	}
}

// maybeStart begins a capture if a value starts here at a wanted path.
func (s *jscan) maybeStart(c byte) {
	if s.active >= 0 || s.depth < 1 || s.depth > maxTrack || !s.want[s.depth] || !s.isObj[s.depth] || !s.keyOK[s.depth] {
		return
	}
	for i, p := range s.paths {
		if len(p) != s.depth || s.caps[i].done {
			continue
		}
		if !s.pathIs(p) {
			continue
		}
		s.active, s.capDepth = i, s.depth
		s.capScalar = c != '"' && c != '{' && c != '['
		s.capString = c == '"'
		cp := &s.caps[i]
		cp.buf, cp.over = append(cp.buf[:0], c), false
		s.keyOK[s.depth] = false // one value per key
		return
	}
	// no capture starts later in this scalar either (the rest of a
	// number, say): one value per key. A container keeps its key: paths
	// go through it.
	if c != '{' && c != '[' {
		s.keyOK[s.depth] = false
	}
}

func (s *jscan) pathIs(p []string) bool {
	for d := 1; d <= len(p); d++ {
		if !s.isObj[d] || !s.keyOK[d] && d != s.depth || string(s.keys[d]) != p[d-1] {
			return false
		}
	}
	return true
}

// capByte appends c to the active capture (the first byte was added by
// maybeStart, so this skips the byte that started it).
func (s *jscan) capByte(c byte) {
	cp := &s.caps[s.active]
	if cp.over {
		return
	}
	if len(cp.buf) >= maxCapture {
		cp.over, cp.buf = true, cp.buf[:0]
		return
	}
	cp.buf = append(cp.buf, c)
}

// endCapture finishes the active capture; dropLast removes the delimiter a
// scalar capture swallowed.
func (s *jscan) endCapture(dropLast bool) {
	cp := &s.caps[s.active]
	if dropLast && !cp.over && len(cp.buf) > 0 {
		cp.buf = cp.buf[:len(cp.buf)-1]
	}
	cp.done = true
	s.active = -1
}
