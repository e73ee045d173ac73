package placeholder

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
)

// DefaultBufferLimit is the body size up to which [Request] checks and
// rewrites a body whole before sending it.
const DefaultBufferLimit = 1 << 20

// Applied is what [Request] did to a request.
type Applied struct {
	// Used lists the credential paths substituted in the URL, the headers
	// and a buffered body (a streamed body's are not listed).
	Used []string

	refused atomic.Pointer[NotAllowedError] // set by a streamed body's reader
}

// BodyErr is the refusal a streamed body failed with, if any: check it
// when the upstream round trip fails, since transports do not always wrap
// a body's read error. It never blocks on the body. A non-nil result
// matches [ErrNotAllowed]: answer 403 PLACEHOLDER_NOT_ALLOWED.
func (a *Applied) BodyErr() error {
	if na := a.refused.Load(); na != nil {
		return na
	}
	return nil
}

// watchedBody is a streamed body: it records a refusal in its Applied
// (the transport reads it on its own goroutine).
type watchedBody struct {
	a  *Applied
	rw *Rewriter
	rc io.Closer
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rw.Read(p)
	var na *NotAllowedError
	if errors.As(err, &na) {
		b.a.refused.Store(na)
	}
	return n, err
}

func (b *watchedBody) Close() error { return b.rc.Close() }

// Request substitutes the placeholders of req, an outgoing request the
// policy has already judged as the agent sent it: its path and query, its
// header values and its body.
//
// On a rule without placeholder substitution pass a nil allowed: every
// placeholder then fails (detection only), a body keeps its length and
// framing, and a body with a Content-Encoding is sent as is (no secret can
// be put in it; a compressed placeholder is not seen).
//
// With substitution, a body with a Content-Encoding fails with
// [ErrEncodedBody]; a body up to bufferLimit bytes with a known length is
// checked whole before anything is sent and gets its exact new
// Content-Length; a longer or chunked one is streamed and sent chunked.
//
// Either way a streamed body meeting a disallowed placeholder fails the
// upstream request before the placeholder's bytes are sent (see
// [Applied.BodyErr]). On error req is unchanged except that its body may
// have been read and closed.
func Request(req *http.Request, allowed Allowed, bufferLimit int64) (*Applied, error) {
	detectOnly := allowed == nil
	if detectOnly {
		allowed = None
	}
	a := &Applied{}
	if _, err := ReplaceHeader(req.Header.Clone(), allowed); err != nil {
		return nil, err // checked on a copy: nothing changes on error
	}
	u := *req.URL
	used, err := ReplaceURL(&u, allowed)
	if err != nil {
		return nil, err
	}
	if req.Body != nil && req.Body != http.NoBody {
		if err := CheckEncoding(req.Header); err != nil {
			if !detectOnly {
				return nil, err
			}
		} else if err := a.wrapBody(req, allowed, bufferLimit, detectOnly); err != nil {
			return nil, err
		}
	}
	usedH, _ := ReplaceHeader(req.Header, allowed)
	*req.URL = u
	a.Used = append(append(used, usedH...), a.Used...)
	return a, nil
}

// wrapBody wraps req.Body for substitution and fixes its length.
func (a *Applied) wrapBody(req *http.Request, allowed Allowed, bufferLimit int64, detectOnly bool) error {
	esc := EscaperFor(req.Header.Get("Content-Type"))
	length := req.ContentLength
	if length == 0 {
		length = -1 // a Body with ContentLength 0 means unknown
	}
	r, n, used, err := Body(req.Body, length, bufferLimit, allowed, esc)
	if err != nil {
		req.Body.Close()
		return err
	}
	a.Used = used
	if detectOnly {
		n = req.ContentLength // nothing is substituted: same bytes, same framing
	}
	orig := req.Body
	if rw, ok := r.(*Rewriter); ok {
		req.Body = &watchedBody{a: a, rw: rw, rc: orig}
	} else {
		req.Body = struct {
			io.Reader
			io.Closer
		}{r, orig}
	}
	req.GetBody = nil
	if detectOnly {
		return nil
	}
	req.ContentLength = n
	if n >= 0 {
		req.Header.Set("Content-Length", strconv.FormatInt(n, 10))
	} else {
		req.Header.Del("Content-Length")
	}
	return nil
}
