package usage

import "encoding/binary"

// The chunks of one stream are alike: a chat completion chunk repeats the
// id, object, created, model and system_fingerprint members of the one
// before it byte for byte, and only its choices (and usage) differ. A
// member's walk (its syntax checked, its offsets found) depends only on
// its own bytes and the one after them (a number ends at the first byte
// that cannot continue it), so the members of the last object that lie,
// with that byte, inside the bytes it shares with the next object are
// that object's members too: the next walk resumes after them.

// maxCachedObject bounds the copy a memberCache keeps (chunks are small;
// a longer object is walked whole).
const maxCachedObject = 4 << 10

// memberCache walks objects as appendMembers does, resuming after the
// members an object shares with the one walked before it.
type memberCache struct {
	prev []byte   // the last object walked, when ok
	ms   []member // its members, when ok (the walk's scratch otherwise)
	open int      // its opening brace
	ok   bool     // prev, ms and open describe the last object walked, a valid one
}

// walk is appendMembers(nil, b). The members it returns are the cache's
// own: valid until the next walk or reset.
func (c *memberCache) walk(b []byte) (ms []member, open, closing int, ok bool) {
	j := 0 // members of prev that b starts with
	if c.ok {
		l := commonPrefix(b, c.prev)
		for j < len(c.ms) && c.ms[j].valEnd < l { // the byte after the value is shared too
			j++
		}
	}
	if j > 0 {
		ms, open, closing, ok = walkMembers(c.ms[:j], b, c.open, c.ms[j-1].valEnd, true)
	} else {
		ms, open, closing, ok = appendMembers(c.ms[:0], b)
	}
	if !ok {
		c.ok = false
		return nil, 0, 0, false
	}
	c.ms, c.open, c.ok = ms, open, len(b) <= maxCachedObject
	if c.ok {
		c.prev = append(c.prev[:0], b...)
	}
	return ms, open, closing, true
}

// reset forgets the last object (a new stream), keeping the buffers.
func (c *memberCache) reset() {
	c.ok = false
	if cap(c.prev) > maxCachedObject {
		c.prev = nil
	}
	if cap(c.ms) > 256 {
		c.ms = nil
	}
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n && binary.LittleEndian.Uint64(a[i:]) == binary.LittleEndian.Uint64(b[i:]) {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// commonSuffix is the length of the longest common suffix of a and b.
func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	a, b = a[len(a)-n:], b[len(b)-n:]
	i := n
	for i >= 8 && binary.LittleEndian.Uint64(a[i-8:]) == binary.LittleEndian.Uint64(b[i-8:]) {
		i -= 8
	}
	for i > 0 && a[i-1] == b[i-1] {
		i--
	}
	return n - i
}
