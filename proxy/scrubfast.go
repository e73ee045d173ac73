package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// Scrubbing fast paths. Per-response scrubbing used to cost ~50 KiB and
// ~60 allocations (the secret's forms and the read buffers), most of what
// airlock allocated per proxied request: replacers of static credentials
// are now cached and scrubReader buffers pooled. And a scrubbed body used
// to lose its Content-Length, which made the forwarder flush headers
// and every write separately and answer chunked: three TLS records and
// syscalls for a 181-byte answer. Short known-length bodies are now
// scrubbed whole and keep an exact Content-Length.

// maxWholeScrub is the largest known-length body scrubbed whole in
// ModifyResponse; longer ones, unknown lengths and SSE stream through a
// scrubReader.
const maxWholeScrub = 64 << 10

// pooledScrubCap is the capacity of pooled scrubReader buffers: a read
// plus the longest form of a secret up to ~3 KiB.
const pooledScrubCap = scrubReadSize + 4<<10

var scrubBufs = sync.Pool{New: func() any { b := make([]byte, 0, pooledScrubCap); return &b }}

// scrubBuffer returns an empty buffer with room for need bytes, pooled
// when need fits.
func scrubBuffer(need int) []byte {
	if need > pooledScrubCap {
		return make([]byte, 0, need)
	}
	b := scrubBufs.Get().(*[]byte)
	return (*b)[:0]
}

func putScrubBuffer(b []byte) {
	if cap(b) >= pooledScrubCap && cap(b) <= 4*pooledScrubCap {
		b = b[:0]
		scrubBufs.Put(&b)
	}
}

var errScrubClosed = errors.New("scrubbed body read after close")

// release hands the buffers back to the pool; later Reads fail. Call it
// once, from the goroutine that reads (the relay closes the body
// after its last read, on the same goroutine).
func (s *scrubReader) release() {
	if s.in == nil {
		return
	}
	putScrubBuffer(s.in)
	putScrubBuffer(s.out)
	s.in, s.out, s.off = nil, nil, 0
	if s.err == nil {
		s.err = errScrubClosed
	}
}

// maxCachedReplacers bounds the replacer cache; it is cleared when full
// (policy and vault reloads leave stale keys behind).
const maxCachedReplacers = 1024

type replacerKey struct {
	cred *vault.Credential
	rule *policy.Rule
}

// replacerCache memoises the replacers of static credentials. A vault
// snapshot's credentials and a policy's rules are immutable, so the
// pointers identify the secret and the injection; keys hold them alive, so
// an address is never reused while cached.
type replacerCache struct {
	mu sync.Mutex // guards m
	m  map[replacerKey]*replacer
}

// cachedReplacer is replacerFor, memoised for static credentials. Token
// credentials (oauth2, aws) are built every time: their live tokens
// change.
func (s *Server) cachedReplacer(d *decision) *replacer {
	if kindOf(d.cred) != vault.KindStatic {
		return s.replacerFor(d)
	}
	c := &s.replacers
	k := replacerKey{cred: d.cred, rule: d.rule}
	c.mu.Lock()
	r, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return r
	}
	r = s.replacerFor(d)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedReplacers {
		c.m = make(map[replacerKey]*replacer)
	}
	c.m[k] = r
	c.mu.Unlock()
	return r
}

// scrubWhole scrubs a short identity-encoded body of known length at once
// and, when the body held no echo, keeps its Content-Length, so the agent
// gets one plain response written in one piece. It reports false, leaving
// resp alone, when the body does not qualify. The wait is bounded: the
// upstream declared the length, and the idle timeout of its body applies.
func scrubWhole(resp *http.Response, r *replacer, e *echoes) (bool, error) {
	if resp.ContentLength < 0 || resp.ContentLength > maxWholeScrub || len(resp.TransferEncoding) > 0 {
		return false, nil
	}
	if enc := strings.TrimSpace(resp.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return false, nil
	}
	if isEventStream(resp.Header) {
		return false, nil
	}
	body, err := readWhole(resp.Body, resp.ContentLength)
	_ = resp.Body.Close()
	if err != nil {
		return true, err
	}
	if scrubbed, n := r.replaceAll(body); n > 0 { // as on the streaming path: a scrubbed body has no length
		e.add(n)
		e.report()
		resp.Body = io.NopCloser(bytes.NewReader(scrubbed))
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return true, nil
	}
	wb := &wholeBody{}
	wb.Reset(body)
	resp.Body = wb
	if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err != nil || n != int64(len(body)) {
		resp.Header.Set("Content-Length", strconv.Itoa(len(body))) // what the agent gets is what was read
	}
	return true, nil
}

// wholeBody is a body already read: one allocation for reader and closer.
type wholeBody struct{ bytes.Reader }

func (wholeBody) Close() error { return nil }

// readWhole reads a body of the declared size to its end; a body longer
// than declared is an error (the transport already refuses shorter ones).
func readWhole(body io.Reader, size int64) ([]byte, error) {
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

// pairSet is a bitset of two-byte sequences: the replacer's quick filter,
// so that a byte that merely starts a form (a letter, in text) costs one
// lookup instead of a comparison with every form. Forms are at least
// minScrubLen bytes long, so every match starts with a pair in the set.
type pairSet [1 << 16 / 64]uint64

func (p *pairSet) add(a, b byte) {
	i := uint(a)<<8 | uint(b)
	p[i/64] |= 1 << (i % 64)
}

func (p *pairSet) has(a, b byte) bool {
	i := uint(a)<<8 | uint(b)
	return p[i/64]&(1<<(i%64)) != 0
}
