package scrub

import "sync"

// A Reader starts with small buffers and moves to ReadSize ones only when
// a read fills what it has. Streams (SSE events, MCP messages, LLM tokens)
// arrive in small pieces and sit waiting for the next one most of their
// life: with two 48 KiB buffers each, ten thousand streams held ~1 GiB.
// Bulk bodies grow after their first read, so they still move in large
// reads. Buffer sizes never change what is scrubbed: the kept tail is
// always shorter than the longest form, and a buffer always has room for
// more than that.

// SmallCap is the capacity of a Reader's starting buffers, when the
// longest form leaves room in it for a read of at least minSmallRead.
const SmallCap = 4 << 10

const minSmallRead = 1 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, 0, SmallCap); return &b }}

// startBuffers returns a new Reader's in and out buffers.
func startBuffers(maxLen int) (in, out []byte) {
	if maxLen+minSmallRead > SmallCap {
		need := ReadSize + maxLen
		return scrubBuffer(need), scrubBuffer(need)
	}
	return (*smallBufs.Get().(*[]byte))[:0], (*smallBufs.Get().(*[]byte))[:0]
}

// grow moves s to ReadSize buffers (once), keeping the undecided tail.
func (s *Reader) grow() {
	s.filled = false
	need := ReadSize + s.r.maxLen
	if cap(s.in) >= need {
		return
	}
	in := append(scrubBuffer(need), s.in...)
	putScrubBuffer(s.in)
	s.in = in
	if cap(s.out) < need {
		putScrubBuffer(s.out)
		s.out = scrubBuffer(need)
	}
}

// lendOut hands a small (stream's) out buffer, empty at the start of a
// fill, back to the pool while the fill waits on src, and reports whether
// it did: ten thousand streams waiting for their next event then hold
// one buffer each, not two. A grown (bulk) Reader keeps its buffers.
func (s *Reader) lendOut() bool {
	if cap(s.out) != SmallCap {
		return false
	}
	putScrubBuffer(s.out)
	s.out = nil
	return true
}
