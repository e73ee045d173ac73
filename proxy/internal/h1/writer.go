package h1

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// innerWriter is the http.ResponseWriter of the lean loop (inner.go). It
// writes the head when the status is set, frames the body by the
// Content-Length the handler set, else chunked (HTTP/1.1) or by closing
// (HTTP/1.0), and sends trailers announced in "Trailer" or set with
// http.TrailerPrefix. Flush, FlushError and Hijack serve
// http.ResponseController (SSE streaming, WebSocket upgrades).
type innerWriter struct {
	ic  *innerConn
	req *http.Request
	h   http.Header

	wroteHeader bool
	hijacked    bool
	noBody      bool  // HEAD, 204, 304
	chunked     bool  // body sent chunked
	closeAfter  bool  // the connection ends after this response
	clen        int64 // declared Content-Length, -1 none
	written     int64
	err         error // first write error: the connection is done
}

var errHijacked = errors.New("connection hijacked")

func (w *innerWriter) reset(req *http.Request) {
	h := w.h
	if h == nil {
		h = headerMaps.Get().(http.Header) // idle.go
	}
	clear(h) // the previous handler is done with it
	*w = innerWriter{ic: w.ic, req: req, h: h, clen: -1}
}

func (w *innerWriter) Header() http.Header { return w.h }

func (w *innerWriter) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeHead(code) // informational: the final status is still to come
		w.flush()
		return
	}
	w.wroteHeader = true
	w.ic.markHeadOut()
	w.frame(code)
	w.writeHead(code)
}

// frame picks the body framing for a final status.
func (w *innerWriter) frame(code int) {
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	w.closeAfter = w.req.Close || !w.req.ProtoAtLeast(1, 1) || w.ic.s.closing()
	if cl := w.h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.clen = n
		} else {
			w.h.Del("Content-Length")
		}
	}
	switch {
	case w.noBody || w.clen >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
}

// writeHead writes the status line and the headers (trailers excluded).
func (w *innerWriter) writeHead(code int) {
	bw := w.ic.writer()
	b := bw.AvailableBuffer()
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	_, _ = bw.Write(b)
	for k, vv := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) || !validHeaderName(k) {
			continue
		}
		for _, v := range vv {
			w.headerLine(k, v)
		}
	}
	if code >= 200 {
		if w.chunked {
			w.headerLine("Transfer-Encoding", "chunked")
		}
		if w.closeAfter {
			w.headerLine("Connection", "close")
		}
		if _, ok := w.h["Date"]; !ok {
			b := append(bw.AvailableBuffer(), "Date: "...)
			b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
			_, _ = bw.Write(append(b, "\r\n"...))
		}
	}
	_, err := bw.WriteString("\r\n")
	w.fail(err)
}

func (w *innerWriter) headerLine(k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw := w.ic.writer()
	_, _ = bw.WriteString(k)
	_, _ = bw.WriteString(": ")
	_, _ = bw.WriteString(v)
	_, _ = bw.WriteString("\r\n")
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func (w *innerWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, errHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.clen >= 0 && w.written+int64(len(p)) > w.clen {
		return 0, http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, nil
	}
	bw := w.ic.writer()
	if w.chunked {
		b := strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16)
		_, _ = bw.Write(append(b, "\r\n"...))
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	w.fail(err)
	return n, err
}

func (w *innerWriter) fail(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

func (w *innerWriter) flush() {
	if w.ic.bw != nil { // nil: released after the last flush, nothing buffered
		w.fail(w.ic.bw.Flush())
	}
}

// FlushError sends what is buffered to the agent (http.ResponseController).
func (w *innerWriter) FlushError() error {
	if w.hijacked {
		return errHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.flush()
	if w.err == nil {
		// A stream (SSE) waits between flushes, often for long: it holds no
		// 16 KiB write buffer meanwhile (the next write takes one again).
		w.ic.releaseWriter()
	}
	return w.err
}

func (w *innerWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection to the handler (a WebSocket splice). Bytes
// the agent sent after the request head are replayed by the returned conn.
func (w *innerWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked || w.wroteHeader {
		return nil, nil, errHijacked
	}
	w.hijacked = true
	ic := w.ic
	ic.endWatch() // the splice reads the connection from now on
	_ = ic.c.SetReadDeadline(time.Time{})
	br := ic.reader()
	return &peekedConn{Conn: ic.c, r: br}, bufio.NewReadWriter(br, ic.writer()), nil
}

// finish completes the response after the handler returned; false means
// the connection cannot carry another request.
func (w *innerWriter) finish() bool {
	if !w.wroteHeader {
		w.h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked && w.err == nil {
		_, _ = w.ic.writer().WriteString("0\r\n")
		w.writeTrailers()
		_, err := w.ic.writer().WriteString("\r\n")
		w.fail(err)
	}
	w.flush()
	complete := w.noBody || w.clen < 0 || w.written == w.clen
	return w.err == nil && complete && !w.closeAfter
}

// writeTrailers writes the trailers: the names announced in "Trailer",
// and keys set with http.TrailerPrefix after the head.
func (w *innerWriter) writeTrailers() {
	for _, list := range w.h["Trailer"] {
		for _, k := range strings.Split(list, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			for _, v := range w.h[k] {
				w.headerLine(k, v)
			}
		}
	}
	for k, vv := range w.h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validHeaderName(name) {
			for _, v := range vv {
				w.headerLine(name, v)
			}
		}
	}
}

// peekedConn replays the bytes the loop read ahead (Hijack).
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
