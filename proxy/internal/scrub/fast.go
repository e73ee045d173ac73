package scrub

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// PooledCap is the capacity of pooled Reader buffers: a read plus the
// longest spelling of a form (maxEscape × its length) of up to ~2.7 KiB, a
// long JWT's base64 form.
const PooledCap = ReadSize + 16<<10

var scrubBufs = sync.Pool{New: func() any { b := make([]byte, 0, PooledCap); return &b }}

// scrubBuffer returns an empty buffer with room for need bytes, pooled
// when need fits.
func scrubBuffer(need int) []byte {
	if need > PooledCap {
		return make([]byte, 0, need)
	}
	b := scrubBufs.Get().(*[]byte)
	return (*b)[:0]
}

func putScrubBuffer(b []byte) {
	switch {
	case cap(b) == SmallCap:
		b = b[:0]
		smallBufs.Put(&b)
	case cap(b) >= PooledCap && cap(b) <= 4*PooledCap:
		b = b[:0]
		scrubBufs.Put(&b)
	}
}

var ErrClosed = errors.New("scrubbed body read after close")

// Release hands the buffers back to the pool; later Reads fail. Call it
// once, from the goroutine that reads (the relay closes the body
// after its last read, on the same goroutine).
func (s *Reader) Release() {
	if s.in == nil {
		return
	}
	putScrubBuffer(s.in)
	putScrubBuffer(s.out)
	s.in, s.out, s.off = nil, nil, 0
	if s.err == nil {
		s.err = ErrClosed
	}
}

// WholeBody is a body already read: one allocation for reader and closer.
type WholeBody struct{ bytes.Reader }

func (WholeBody) Close() error { return nil }

// ReadWhole reads a body of the declared size to its end; a body longer
// than declared is an error (the transport already refuses shorter ones).
func ReadWhole(body io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, size+1)
	n, err := io.ReadFull(body, buf)
	switch {
	case (err == io.ErrUnexpectedEOF || err == io.EOF) && int64(n) == size:
		return buf[:n], nil
	case err == nil:
		return nil, errors.New("upstream body longer than its Content-Length")
	}
	return nil, err
}

// pairSet is a bitset of two-byte sequences: the Replacer's quick filter,
// so that a byte that merely starts a form (a letter, in text) costs one
// lookup instead of a comparison with every form. Forms are at least
// MinLen bytes long, so every match starts with a pair in the set.
type pairSet [1 << 16 / 64]uint64

func (p *pairSet) add(a, b byte) {
	i := uint(a)<<8 | uint(b)
	p[i/64] |= 1 << (i % 64)
}

func (p *pairSet) has(a, b byte) bool {
	i := uint(a)<<8 | uint(b)
	return p[i/64]&(1<<(i%64)) != 0
}
