package grpcwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"

	"github.com/airlock/airlock/proxy/internal/scrub"
)

// Scrubbing gRPC responses. A gRPC body is a sequence of messages, each
// behind a 5-byte prefix (compressed flag, big-endian length). Replacing
// an echo of the secret changes a message's length, so the scrubber works
// message by message: it reads one message whole (at most
// maxGRPCScrubMessage, gRPC's default receive limit), scrubs it and frames
// it again with its new length. A compressed message cannot be scrubbed:
// the stream fails rather than pass it unchecked. airlock asks gRPC
// upstreams for uncompressed messages (grpc-accept-encoding: identity,
// package h2), so a compliant upstream never sends one.

const maxGRPCScrubMessage = 4 << 20

var (
	errGRPCCompressed = errors.New("upstream sent a compressed gRPC message, which airlock cannot scrub for credential echoes")
	errGRPCTooLarge   = errors.New("upstream sent a gRPC message larger than 4 MiB, which airlock does not scrub")
)

// Scrub wraps resp's body in a message-by-message scrubber with r. add is
// told of every echo replaced (the trailer's included); report runs once,
// when the body is closed.
func Scrub(resp *http.Response, r *scrub.Replacer, add func(int), report func()) error {
	resp.Body = &grpcScrubBody{src: resp.Body, r: r, add: add, report: report, resp: resp}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

// grpcScrubBody is a gRPC response body scrubbed one message at a time.
type grpcScrubBody struct {
	src    io.ReadCloser
	r      *scrub.Replacer
	add    func(int)
	report func()
	resp   *http.Response // its Trailer is scrubbed at EOF
	out    []byte         // framed, scrubbed bytes not yet read
	err    error          // what follows out
}

func (b *grpcScrubBody) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.err = b.next()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// next reads, scrubs and frames the next message into out.
func (b *grpcScrubBody) next() error {
	var head [5]byte
	if _, err := io.ReadFull(b.src, head[:]); err != nil {
		if err == io.EOF { // between messages: the body's end
			b.add(b.r.ScrubHeader(b.resp.Trailer))
		}
		return err
	}
	if head[0]&1 != 0 {
		return errGRPCCompressed
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n > maxGRPCScrubMessage {
		return errGRPCTooLarge
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(b.src, msg); err != nil {
		return io.ErrUnexpectedEOF
	}
	sr := scrub.NewReader(bytes.NewReader(msg), b.r, b.add)
	clean, err := io.ReadAll(sr)
	sr.Release()
	if err != nil {
		return err
	}
	out := make([]byte, 5, 5+len(clean))
	out[0] = head[0]
	binary.BigEndian.PutUint32(out[1:], uint32(len(clean)))
	b.out = append(out, clean...)
	return nil
}

func (b *grpcScrubBody) Close() error {
	b.report()
	return b.src.Close()
}
