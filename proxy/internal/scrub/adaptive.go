package scrub

import (
	"io"
	"sync"
)

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

var smallBufs = sync.Pool{New: func() any { return new([SmallCap]byte) }} // see scrubBufs

// startBuffers returns a new Reader's in and out buffers. A Reader with
// small buffers starts parked (none: its first fill takes them): a
// stream's body is made as its head arrives and then waits, often a
// second or more, for its first event, and ten thousand streams opened
// in a burst held two buffers each for that wait, which then sat in the
// pool until two GC cycles passed (~2 KiB per stream of live heap at
// 3000 streams, airlock-bench streams).
func startBuffers(maxLen int) (in, out []byte) {
	if maxLen+minSmallRead > SmallCap {
		need := ReadSize + maxLen
		return scrubBuffer(need), scrubBuffer(need)
	}
	return nil, nil
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

// Park hands a small (stream's) Reader's buffers back to the pool while
// it has nothing to return, and reports whether a Read would now read src
// (nothing scrubbed is waiting, no error is due): a caller that waits
// for src to be readable before that Read then waits holding none of the
// Reader's buffers. A kept tail (bytes that may still grow into a form)
// keeps the in buffer: it is scanned again with the bytes that follow,
// exactly as without parking. The next Read takes buffers again. A grown
// (bulk) Reader keeps its buffers and is never parked.
func (s *Reader) Park() bool {
	if s.off < len(s.out) || s.err != nil {
		return false
	}
	if s.out != nil && cap(s.out) == SmallCap {
		putScrubBuffer(s.out)
		s.out, s.off = nil, 0
	}
	if s.in != nil && cap(s.in) == SmallCap && len(s.in) == 0 {
		putScrubBuffer(s.in)
		s.in = nil
	}
	return true
}

// Source is the reader s scrubs.
func (s *Reader) Source() io.Reader { return s.src }
