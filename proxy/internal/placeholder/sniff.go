package placeholder

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/airlock/airlock/proxy/errcode"
)

// Sniffing: the refusal of placeholders where no rule binds them.
//
// On a rule that binds them (inject type placeholder, or placeholders:
// true) the rule's own credential is substituted in the path, query,
// headers and body. On every other request a placeholder anywhere is
// refused with 403 PLACEHOLDER_NOT_ALLOWED and never forwarded.
//
// Detection must not cost every body a rewrite: a body of known length up
// to sniffWhole bytes is read first and searched with bytes.Index (one
// copy, then the transport sends it from memory: a clean 403 with nothing
// sent); a longer or chunked body is streamed through sniffBody, which
// passes the agent's bytes in place and hands the stream to the full
// detector only from the first "{{airlock:" on. BenchmarkPlaceholderSniff
// measures both against the detector alone.

// sniffWhole is the longest known-length body checked whole before sending.
const sniffWhole = 64 << 10

var prefix = []byte(Prefix)

// HeadMayHold is false when out's URL and headers cannot hold a
// placeholder: no "airlock" in the decoded path, the query or a header
// value, and no escape in the query (which the detector decodes). It
// spares the common request the detector's copies.
func HeadMayHold(out *http.Request) bool {
	const word = "airlock"
	u := out.URL
	if strings.Contains(u.Path, word) || strings.Contains(u.RawPath, word) ||
		strings.Contains(u.RawQuery, word) || strings.IndexByte(u.RawQuery, '%') >= 0 {
		return true
	}
	for _, vv := range out.Header {
		for _, v := range vv {
			if strings.Contains(v, word) {
				return true
			}
		}
	}
	return false
}

// Sniff refuses a body holding a placeholder (detection only): at once
// for a short body of known length, else while it streams; refused then
// reports the streamed body's refusal, if any.
func Sniff(out *http.Request) (refused func() error, err error) {
	if out.Body == nil || out.Body == http.NoBody {
		return nil, nil
	}
	if n := out.ContentLength; n > 0 && n <= sniffWhole {
		b := make([]byte, n)
		_, err := io.ReadFull(out.Body, b)
		_ = out.Body.Close()
		if err != nil {
			return nil, errcode.New(http.StatusBadRequest, errcode.BadRequest, "cannot read the request body", "send the body again")
		}
		if bytes.Contains(b, prefix) {
			if _, err := io.Copy(io.Discard, NewRewriter(bytes.NewReader(b), None, nil)); err != nil {
				return nil, Refusal(err)
			}
		}
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		return nil, nil
	}
	sb := &sniffBody{src: out.Body, refused: new(atomic.Pointer[error])}
	out.Body = sb
	if gb := out.GetBody; gb != nil {
		out.GetBody = func() (io.ReadCloser, error) {
			b, err := gb()
			if err != nil {
				return nil, err
			}
			return &sniffBody{src: b, refused: sb.refused}, nil
		}
	}
	return sb.err, nil
}

// Refusal is the 403 for a placeholder refused or impossible (an
// *errcode.Error in err is returned as it is).
func Refusal(err error) *errcode.Error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e
	}
	hint := "write {{airlock:PATH}} only in requests to a host whose rule binds PATH with inject: {type: placeholder} or placeholders: true"
	if errors.Is(err, ErrEncodedBody) {
		hint = "send the body without Content-Encoding so airlock can substitute the placeholder"
	}
	return errcode.New(http.StatusForbidden, errcode.PlaceholderNotAllowed, err.Error(), hint)
}

// sniffBody streams a body, refusing it from the first well-formed
// placeholder on. Bytes before any "{{airlock:" are read into the
// caller's buffer and returned as they are; a trailing partial prefix is
// held back until the next read shows what follows it.
type sniffBody struct {
	src     io.ReadCloser
	held    []byte                 // a proper prefix of "{{airlock:" ending the last read
	rw      *Rewriter              // the detector, from the first full prefix on
	refused *atomic.Pointer[error] // shared with the bodies GetBody makes
	pend    []byte                 // read for a caller with a tiny buffer, not yet returned
	pendErr error
}

func (b *sniffBody) Read(p []byte) (int, error) {
	if len(b.pend) > 0 || b.pendErr != nil {
		n := copy(p, b.pend)
		b.pend = b.pend[n:]
		if len(b.pend) == 0 {
			err := b.pendErr
			b.pendErr = nil
			return n, err
		}
		return n, nil
	}
	if b.rw != nil {
		n, err := b.rw.Read(p)
		if errors.Is(err, ErrNotAllowed) && b.refused != nil {
			b.refused.Store(&err)
		}
		return n, err
	}
	if len(p) < 2*len(prefix) {
		var tmp [2 * len(Prefix)]byte
		n, err := b.Read(tmp[:])
		b.pend, b.pendErr = append(b.pend[:0], tmp[:n]...), err
		return b.Read(p)
	}
	for {
		k := copy(p, b.held)
		b.held = b.held[:0]
		n, err := b.src.Read(p[k:])
		buf := p[:k+n]
		if i := bytes.Index(buf, prefix); i >= 0 {
			rest := bytes.Clone(buf[i:])
			b.rw = NewRewriter(io.MultiReader(bytes.NewReader(rest), eofAfter(b.src, err)), None, nil)
			if i == 0 {
				return b.Read(p)
			}
			return i, nil
		}
		if err != nil {
			return len(buf), err
		}
		keep := partialPrefix(buf)
		b.held = append(b.held, buf[len(buf)-keep:]...)
		if len(buf) > keep {
			return len(buf) - keep, nil
		}
	}
}

// err is the placeholder refusal the body failed with, if any.
func (b *sniffBody) err() error {
	if e := b.refused.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *sniffBody) Close() error { return b.src.Close() }

// partialPrefix is the length of the longest suffix of buf that is a
// proper prefix of "{{airlock:".
func partialPrefix(buf []byte) int {
	for k := min(len(prefix)-1, len(buf)); k > 0; k-- {
		if bytes.HasPrefix(prefix, buf[len(buf)-k:]) {
			return k
		}
	}
	return 0
}

// eofAfter is src, or a reader returning err at once when src already did.
func eofAfter(src io.Reader, err error) io.Reader {
	if err != nil {
		return failReader{err}
	}
	return src
}

type failReader struct{ err error }

func (e failReader) Read([]byte) (int, error) { return 0, e.err }
