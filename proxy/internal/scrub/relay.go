package scrub

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Checks for the relay of a response that is scrubbed (a request with an
// injected credential).
//
// # Pieces
//
// A scrubber that sees "sk-liv" in one response and "e-4f0c" in the next
// sees no secret: an agent that asks with Range: bytes=0-5, 6-11, ... an
// upstream that echoes the credential (http.ServeContent honours Range)
// rebuilds it six bytes at a time. The relay strips Range and If-Range
// from requests it injects into ([StripRange]) and refuses a 206 or a
// Content-Range answer to them ([RefusePartial]).
//
// # Compression layers
//
// The relay decodes one Content-Encoding layer before scrubbing. A body
// gzipped twice but labelled once still looks like gzip after that layer;
// the agent would unwrap the second one and find the secret the scrubber
// could not see. [RefuseCompressed] wraps the decoded body and fails its
// first Read when the body starts with a gzip (or zstd) header. (zlib has
// no fixed magic: its 2-byte header check would refuse one text body in 31
// that starts with "x", "h", "H", "8", ...)

// ErrPartial refuses a partial answer to a request with an injected
// credential.
var ErrPartial = errors.New("partial response (206 / Content-Range) to a request with an injected credential")

// ErrStillCompressed refuses a decoded body that is compressed again.
var ErrStillCompressed = errors.New("decoded upstream body is itself compressed")

// rangeHeaders are the request headers that ask for part of a
// representation.
var rangeHeaders = []string{"Range", "If-Range"}

// StripRange deletes the agent's Range and If-Range from an outbound
// request that carries an injected credential, and reports whether it did
// (for the log line). Call it where the credential is injected, on every
// door.
func StripRange(h http.Header) bool {
	stripped := false
	for _, k := range rangeHeaders {
		if _, ok := h[k]; ok {
			delete(h, k)
			stripped = true
		}
	}
	return stripped
}

// RefusePartial returns ErrPartial (wrapped) when resp is a partial
// answer: status 206 or a Content-Range header. With StripRange applied
// the upstream has no reason to send one.
func RefusePartial(status int, h http.Header) error {
	cr := h["Content-Range"] // canonical already: h.Get without canonicalising on every response
	if status == http.StatusPartialContent || len(cr) > 0 && cr[0] != "" {
		return fmt.Errorf("status %d, Content-Range %q: %w", status, h.Get("Content-Range"), ErrPartial)
	}
	return nil
}

// compressedMagic are the leading bytes of the compressed formats an
// agent could unwrap itself: gzip, zstd.
var compressedMagic = [][]byte{{0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}}

// Compressed reports whether head starts like a gzip or zstd stream.
func Compressed(head []byte) bool {
	for _, m := range compressedMagic {
		if bytes.HasPrefix(head, m) {
			return true
		}
	}
	return false
}

// RefuseCompressed wraps a body decoded from one Content-Encoding layer;
// its first Read fails with ErrStillCompressed when the decoded bytes are
// compressed again. Reading waits for at most the 4 bytes the check needs
// (or the end of the body).
func RefuseCompressed(decoded io.Reader) io.Reader {
	return &refuseCompressed{src: decoded}
}

type refuseCompressed struct {
	src     io.Reader
	br      *bufio.Reader
	checked bool
}

func (c *refuseCompressed) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		c.br = bufio.NewReaderSize(c.src, 16)
		head, err := c.br.Peek(4)
		if Compressed(head) {
			c.src, c.br = nil, nil
			return 0, ErrStillCompressed
		}
		if len(head) == 0 && err != nil {
			return 0, err
		}
	}
	if c.br == nil {
		return 0, ErrStillCompressed
	}
	return c.br.Read(p)
}
