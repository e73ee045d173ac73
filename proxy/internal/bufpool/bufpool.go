package proxy

import "sync"

// A relayed body holds its copy buffer for as long as it lasts, and a
// stream (SSE, unknown length) lasts long and moves little: it gets a
// 4 KiB buffer instead of 32 KiB, so ten thousand open streams do not pin
// 320 MiB of buffers. A bigger event only takes more reads.

const streamCopySize = 4 << 10

var streamCopyBuffers = sync.Pool{New: func() any { b := make([]byte, streamCopySize); return &b }}

// copyBufferFor returns a pooled copy buffer: small for streams.
func copyBufferFor(stream bool) *[]byte {
	if stream {
		return streamCopyBuffers.Get().(*[]byte)
	}
	return copyBuffers.Get().(*[]byte)
}

func putCopyBuffer(bp *[]byte) {
	if len(*bp) == streamCopySize {
		streamCopyBuffers.Put(bp)
		return
	}
	copyBuffers.Put(bp)
}
