package usage

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// Body is the metering response body: an io.ReadCloser over the upstream
// body that relays every byte once, as it arrives, while parsing usage on
// the side. Without a request rewrite, Read returns exactly what the
// upstream Read returned. With one (include_usage added), SSE bytes are
// released event by event, each as soon as its blank line arrives, minus
// what the rewrite made the provider add.
type Body struct {
	rc io.ReadCloser
	t  *Ticket

	mu       sync.Mutex // guards the parse state below (Close may race Read)
	tally    tally
	sse      *sseMeter // text/event-stream
	jbuf     *[]byte   // JSON: the copy read at the end (jsonbody.go)
	js       *jscan    // JSON: streaming, when the copy would outgrow maxJSONHold
	paths    [][]string
	finished bool

	ok    bool    // 2xx status
	strip bool    // sse.out holds the relayed bytes
	buf   *[]byte // strip mode read buffer (from stripBufs; only the reading goroutine touches it)
	off   int     // strip mode: bytes of sse.out already returned
	err   error   // strip mode: upstream error, returned once out is drained
}

func isSSE(resp *http.Response) bool {
	return mediaType(header(resp.Header, "Content-Type")) == "text/event-stream"
}

// header is h.Get(key) for a key in canonical form, without canonicalising
// it again.
func header(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// mediaType is the media type mime.ParseMediaType returns for v ("" when
// it fails), without its allocations when v has no parameters.
func mediaType(v string) string {
	switch v { // what providers send, as they send it
	case "application/json", "text/event-stream":
		return v
	}
	if strings.IndexByte(v, ';') >= 0 {
		mt, _, _ := mime.ParseMediaType(v)
		return mt
	}
	mt := strings.TrimSpace(strings.ToLower(v))
	typ, sub, slash := strings.Cut(mt, "/")
	if !isToken(typ) || slash && !isToken(sub) {
		return ""
	}
	return mt
}

// isToken: a non-empty RFC 1521 token (mime's consumeToken took all of it).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !tokenByte[s[i]] { // bytes outside ASCII are never token bytes
			return false
		}
	}
	return true
}

// tokenByte marks the bytes of an RFC 1521 token.
var tokenByte = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
	}
	return t
}()

// newBody sets up t.body (a ticket has one response) for resp.
func (t *Ticket) newBody(resp *http.Response) *Body {
	b := &t.body
	*b = Body{rc: resp.Body, t: t, ok: resp.StatusCode >= 200 && resp.StatusCode < 300}
	if b.rc == nil {
		b.rc = http.NoBody
	}
	if enc := strings.TrimSpace(header(resp.Header, "Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return b // compressed despite our request: relayed, not parsed
	}
	ep := t.info.Endpoint
	mt := mediaType(header(resp.Header, "Content-Type"))
	switch {
	case mt == "text/event-stream":
		b.strip = t.info.Rewritten
		b.sse = getSSEMeter(ep, t.target.Dialect, &b.tally, b.strip)
	case strings.HasSuffix(mt, "json"):
		b.paths = pathsFor(ep, false)
		if onlyTopPaths(b.paths) {
			b.jbuf = jsonBufs.Get().(*[]byte)
		} else {
			b.js = getScan(b.paths)
		}
	}
	return b
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.strip {
		return b.readStripped(p)
	}
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if !b.finished {
		if n > 0 {
			b.feed(p[:n])
		}
		if err != nil {
			b.tally.complete = err == io.EOF && b.ok
			b.end()
		}
	}
	b.mu.Unlock()
	return n, err
}

func (b *Body) feed(p []byte) {
	switch {
	case b.sse != nil:
		b.sse.feed(p)
	case b.jbuf != nil:
		if len(*b.jbuf)+len(p) <= maxJSONHold {
			*b.jbuf = append(*b.jbuf, p...)
			return
		}
		b.js = getScan(b.paths) // too long to copy: stream from here
		b.js.write(*b.jbuf)
		b.js.write(p)
		putJSONBuf(b.jbuf)
		b.jbuf = nil
	case b.js != nil:
		b.js.write(p)
	}
}

// readStripped returns held-back bytes as events complete.
func (b *Body) readStripped(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if b.sse == nil { // released: closed, or drained after its end
			err := b.err
			if err == nil {
				err = io.ErrClosedPipe
			}
			b.mu.Unlock()
			return 0, err
		}
		if b.off < len(b.sse.out) {
			n := copy(p, b.sse.out[b.off:])
			if b.off += n; b.off == len(b.sse.out) {
				b.sse.out, b.off = b.sse.out[:0], 0
			}
			b.mu.Unlock()
			return n, nil
		}
		if b.err != nil {
			err := b.err
			b.releaseSSE() // drained after the end: nothing reads it again
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()
		if b.buf == nil {
			b.buf = stripBufs.Get().(*[]byte)
		}
		n, err := b.rc.Read(*b.buf)
		b.mu.Lock()
		if b.finished {
			b.mu.Unlock()
			b.putBuf()
			if err == nil {
				err = io.ErrClosedPipe
			}
			return 0, err
		}
		b.sse.feed((*b.buf)[:n])
		if err != nil {
			b.putBuf() // no more upstream reads
			b.err = err
			b.tally.complete = err == io.EOF && b.ok
			b.end() // flushes the held event into out
		}
		b.mu.Unlock()
	}
}

// stripBufs are the strip mode read buffers.
var stripBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (b *Body) putBuf() {
	if b.buf != nil {
		stripBufs.Put(b.buf)
		b.buf = nil
	}
}

// end interprets what was seen and ends the ticket. Called with mu held.
func (b *Body) end() {
	if b.finished {
		return
	}
	b.finished = true
	switch {
	case b.sse != nil:
		b.sse.end()
		if !b.strip { // strip mode still relays sse.out
			b.releaseSSE()
		}
	case b.jbuf != nil:
		var top topCaptures
		if top.scan(*b.jbuf, b.paths) {
			interpretJSON(top.get, top.decoded(), b.t.info.Endpoint, &b.tally)
		} else { // not one valid JSON object: the streaming scanner's reading
			b.js = getScan(b.paths)
			b.js.write(*b.jbuf)
			interpretJSON(b.js.get, nil, b.t.info.Endpoint, &b.tally)
			putScan(b.js)
			b.js = nil
		}
		putJSONBuf(b.jbuf) // every use of jbuf is under mu and before finished
		b.jbuf = nil
	case b.js != nil:
		interpretJSON(b.js.get, nil, b.t.info.Endpoint, &b.tally)
		putScan(b.js) // every use of js is under mu and before finished
		b.js = nil
	}
	b.t.finish(&b.tally)
}

// Close implements io.Closer: a body closed before its end is metered
// with what was seen (an aborted stream without its usage chunk records no
// usage and releases the reservation).
func (b *Body) Close() error {
	b.mu.Lock()
	b.end()
	b.releaseSSE()
	b.mu.Unlock()
	return b.rc.Close()
}

// releaseSSE returns the stream meter to the pool. Called with mu held,
// after end.
func (b *Body) releaseSSE() {
	if b.sse != nil {
		putSSEMeter(b.sse)
		b.sse = nil
	}
}

// interpretJSON reads the captures of a whole JSON answer; u, when not
// nil, is the usage capture already decoded (topCaptures.decoded).
func interpretJSON(get func(int) []byte, u *usageFields, ep Endpoint, t *tally) {
	if e := get(pError); e != nil && string(e) != "null" {
		t.errored = true
	}
	switch {
	case ep == EndpointMessages:
		if string(get(pType)) == `"error"` {
			t.errored = true
		}
		if u != nil {
			t.anthropicFields(u, true)
		} else {
			t.addAnthropic(get(pUsage), true)
		}
	case u != nil:
		t.openAIFields(u)
	default:
		t.addOpenAI(get(pUsage))
	}
	t.setModel(get(pModel))
}
