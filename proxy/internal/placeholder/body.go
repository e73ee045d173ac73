package placeholder

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/url"
)

// Escaper encodes a secret for the body it is substituted into.
type Escaper func(secret []byte) []byte

// EscapeRaw puts the secret in verbatim.
func EscapeRaw(secret []byte) []byte { return secret }

// EscapeJSON escapes the secret as the inside of a JSON string (the
// placeholder is expected inside quotes: {"token": "{{airlock:x/y}}"}).
func EscapeJSON(secret []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(string(secret)) // a string always encodes
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return out[1 : len(out)-1]
}

// EscapeForm query-escapes the secret, for
// application/x-www-form-urlencoded bodies.
func EscapeForm(secret []byte) []byte { return []byte(url.QueryEscape(string(secret))) }

// EscaperFor chooses the Escaper for a Content-Type: JSON (application/json
// and any +json type), form, or verbatim for everything else.
func EscaperFor(contentType string) Escaper {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return EscapeRaw
	}
	switch {
	case mt == "application/json" || len(mt) > 5 && mt[len(mt)-5:] == "+json":
		return EscapeJSON
	case mt == "application/x-www-form-urlencoded":
		return EscapeForm
	}
	return EscapeRaw
}

// chunk is how much a Rewriter reads from its source at a time, and about
// how much output it prepares before handing it out.
const chunk = 32 << 10

// Rewriter is an io.Reader substituting the placeholders of the stream it
// reads. It holds back at most MaxLen-1 bytes that may be the start of a
// placeholder split across reads. On a placeholder [Allowed] does not know
// it returns what came before it, then a [*NotAllowedError]: the
// placeholder's bytes are never returned. A Rewriter is not safe for
// concurrent use.
type Rewriter struct {
	src     io.Reader
	allowed Allowed
	esc     Escaper

	in       []byte // read, not yet rewritten; a possible placeholder start when needMore
	out      []byte // rewritten, not yet returned
	needMore bool   // in starts with a possible placeholder: read before rewriting again
	eof      bool   // src returned an error (srcErr)
	srcErr   error
	err      error // returned once out is drained
	used     []string
}

// NewRewriter returns a Rewriter reading src.
func NewRewriter(src io.Reader, allowed Allowed, esc Escaper) *Rewriter {
	if esc == nil {
		esc = EscapeRaw
	}
	return &Rewriter{src: src, allowed: allowed, esc: esc}
}

// Used returns the credential paths substituted so far, in order.
func (w *Rewriter) Used() []string { return w.used }

// Read implements io.Reader.
func (w *Rewriter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(w.out) == 0 {
		if w.err != nil {
			return 0, w.err
		}
		w.fill()
	}
	n := copy(p, w.out)
	w.out = w.out[n:]
	return n, nil
}

// fill reads from src when what is held cannot be rewritten yet, then
// rewrites.
func (w *Rewriter) fill() {
	if (len(w.in) == 0 || w.needMore) && !w.eof {
		if cap(w.in)-len(w.in) < chunk {
			w.in = append(make([]byte, 0, len(w.in)+chunk), w.in...)
		}
		n, err := w.src.Read(w.in[len(w.in) : len(w.in)+chunk])
		w.in = w.in[:len(w.in)+n]
		if err != nil {
			w.eof, w.srcErr = true, err
		}
		if n == 0 && err == nil {
			return
		}
	}
	w.out = w.out[:0]
	w.rewrite()
	if len(w.in) == 0 && w.eof && w.err == nil {
		w.err = w.srcErr
	}
}

// rewrite moves bytes from in to out, substituting placeholders, until in
// is used up, about a chunk is ready, or in starts with a placeholder that
// needs more bytes.
func (w *Rewriter) rewrite() {
	w.needMore = false
	i := 0
	for i < len(w.in) && len(w.out) < chunk {
		j := bytes.IndexByte(w.in[i:], '{')
		if j < 0 {
			w.out = append(w.out, w.in[i:]...)
			i = len(w.in)
			break
		}
		w.out = append(w.out, w.in[i:i+j]...)
		i += j
		n, partial := match(w.in[i:])
		switch {
		case n > 0:
			path := string(w.in[i+len(Prefix) : i+n-len(Suffix)])
			secret, ok := w.allowed(path)
			if !ok {
				w.err = &NotAllowedError{Path: path, Where: "body"}
				w.in, w.eof = nil, true
				return
			}
			w.out = append(w.out, w.esc(secret)...)
			w.used = append(w.used, path)
			i += n
		case partial && !w.eof:
			w.needMore = true
			w.in = w.in[:copy(w.in, w.in[i:])]
			return
		default:
			w.out = append(w.out, '{')
			i++
		}
	}
	w.in = w.in[:copy(w.in, w.in[i:])]
}

// Body prepares a request body for substitution. length is the body's
// Content-Length (-1 when unknown). A body of known length up to
// bufferLimit is read and rewritten whole now: a disallowed placeholder is
// reported here, before anything is sent, and newLength is exact. Any
// other body is streamed through a [Rewriter] and newLength is -1 (send it
// chunked): a disallowed placeholder then fails the stream with a
// [*NotAllowedError]. used lists the paths substituted so far (all of them
// for a buffered body). Check [CheckEncoding] first.
func Body(body io.Reader, length, bufferLimit int64, allowed Allowed, esc Escaper) (r io.Reader, newLength int64, used []string, err error) {
	if length < 0 || length > bufferLimit {
		return NewRewriter(body, allowed, esc), -1, nil, nil
	}
	head, err := io.ReadAll(io.LimitReader(body, bufferLimit+1))
	if err != nil {
		return nil, 0, nil, err
	}
	if int64(len(head)) > bufferLimit {
		// Longer than it said: stream it all, head first.
		return NewRewriter(io.MultiReader(bytes.NewReader(head), body), allowed, esc), -1, nil, nil
	}
	rw := NewRewriter(bytes.NewReader(head), allowed, esc)
	out, err := io.ReadAll(rw)
	if err != nil {
		return nil, 0, nil, err
	}
	return bytes.NewReader(out), int64(len(out)), rw.Used(), nil
}
