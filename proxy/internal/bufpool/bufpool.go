// Package bufpool pools the relay's body copy buffers: 32 KiB for bodies
// of known length, 4 KiB for streams.
//
// A relayed body holds its copy buffer for as long as it lasts, and a
// stream (SSE, unknown length) lasts long and moves little: it gets a
// 4 KiB buffer instead of 32 KiB, so ten thousand open streams do not pin
// 320 MiB of buffers. A bigger event only takes more reads.
package bufpool

import "sync"

const (
	streamSize = 4 << 10
	bodySize   = 32 << 10
)

var (
	streamBuffers = sync.Pool{New: func() any { b := make([]byte, streamSize); return &b }}
	bodyBuffers   = sync.Pool{New: func() any { b := make([]byte, bodySize); return &b }}
)

// Get returns a pooled copy buffer: small for streams.
func Get(stream bool) *[]byte {
	if stream {
		return streamBuffers.Get().(*[]byte)
	}
	return bodyBuffers.Get().(*[]byte)
}

// Put gives a buffer from Get back.
func Put(bp *[]byte) {
	if len(*bp) == streamSize {
		streamBuffers.Put(bp)
		return
	}
	bodyBuffers.Put(bp)
}
