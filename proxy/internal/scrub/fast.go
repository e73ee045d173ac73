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

// The pools hold pointers to the buffers' arrays: a buffer goes back as
// the pointer it came out as ((*[N]byte)(b[:N])), where a *[]byte would
// need a new slice header from the heap at every Put (twice per event
// of a parked stream).
var scrubBufs = sync.Pool{New: func() any { return new([PooledCap]byte) }}

// scrubBuffer returns an empty buffer with room for need bytes, pooled
// when need fits.
func scrubBuffer(need int) []byte {
	if need > PooledCap {
		return make([]byte, 0, need)
	}
	return scrubBufs.Get().(*[PooledCap]byte)[:0]
}

// smallBuffer returns an empty pooled buffer of SmallCap.
func smallBuffer() []byte { return smallBufs.Get().(*[SmallCap]byte)[:0] }

func putScrubBuffer(b []byte) {
	switch {
	case cap(b) == SmallCap:
		smallBufs.Put((*[SmallCap]byte)(b[:SmallCap]))
	case cap(b) >= PooledCap && cap(b) <= 4*PooledCap: // grown by append: its first PooledCap bytes
		scrubBufs.Put((*[PooledCap]byte)(b[:PooledCap]))
	}
}

var ErrClosed = errors.New("scrubbed body read after close")

// Release hands the buffers back to the pool; later Reads fail. Call it
// once, from the goroutine that reads (the relay closes the body
// after its last read, on the same goroutine).
func (s *Reader) Release() {
	if s.released {
		return
	}
	s.released = true
	putScrubBuffer(s.in) // nil when parked: no-op
	putScrubBuffer(s.out)
	s.in, s.out, s.off = nil, nil, 0
	if s.err == nil {
		s.err = ErrClosed
	}
}

// WholeBody is a body already read: one allocation for reader and closer.
// Its bytes come from a pool ([ReadWhole]) and go back on the first Close;
// Reads after Close find nothing.
type WholeBody struct {
	bytes.Reader
	buf *[]byte // the pooled array behind Reader; nil: not pooled or closed
}

// Close empties the body and hands its array back to the pool. A second
// Close does nothing.
func (b *WholeBody) Close() error {
	b.Reader.Reset(nil)
	if b.buf != nil {
		putWhole(b.buf)
		b.buf = nil
	}
	return nil
}

// wholeSizes are the capacities of the pooled arrays of whole bodies;
// larger bodies get an array of their own.
var wholeSizes = [...]int{1 << 10, 8 << 10}

var wholePools [len(wholeSizes)]sync.Pool

func getWhole(n int) *[]byte {
	for i, c := range wholeSizes {
		if n <= c {
			if p, ok := wholePools[i].Get().(*[]byte); ok {
				return p
			}
			b := make([]byte, c)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

func putWhole(p *[]byte) {
	for i, c := range wholeSizes {
		if cap(*p) == c {
			*p = (*p)[:c]
			wholePools[i].Put(p)
			return
		}
	}
}

// ReadWhole reads a body of the declared size to its end into a pooled
// array and returns it as a WholeBody (the bytes: wb.Bytes()); a body
// longer than declared is an error (the transport already refuses shorter
// ones).
func ReadWhole(body io.Reader, size int64) (*WholeBody, error) {
	p := getWhole(int(size) + 1)
	buf := (*p)[:size+1]
	n, err := io.ReadFull(body, buf)
	switch {
	case (err == io.ErrUnexpectedEOF || err == io.EOF) && int64(n) == size:
		wb := &WholeBody{buf: p}
		wb.Reader.Reset(buf[:n])
		return wb, nil
	case err == nil:
		err = errors.New("upstream body longer than its Content-Length")
	}
	putWhole(p)
	return nil, err
}

// Bytes are the body's unread bytes; they belong to the body and are
// valid until Close.
func (b *WholeBody) Bytes() []byte {
	if b.buf == nil {
		return nil
	}
	return (*b.buf)[int(b.Size())-b.Len() : b.Size()]
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
