package proxy

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/airlock/airlock/proxy/internal/bufpool"
	"github.com/airlock/airlock/proxy/internal/scrub"
)

// relay sends a judged request upstream and streams the answer back. It
// does what httputil.ReverseProxy does for a plain request (hop-by-hop
// headers out both ways, client X-Forwarded-* dropped, trailers passed
// on, SSE and unknown-length bodies flushed on every write, a stream cut
// mid-body aborted) without its per-request copies: the inbound request is
// ours, so the outbound one shares its header map and URL, and the
// response headers are handed over rather than copied. Upgrades
// (WebSockets) still go through the ReverseProxy, which splices them.
// 1xx informational answers other than 100/101 are not relayed.
func (s *Server) relay(w http.ResponseWriter, r *http.Request, d *decision) {
	ctx := context.WithValue(d.base, decisionKey{}, d)
	if r.Header["Upgrade"] != nil {
		up := r.WithContext(ctx)
		if err := s.rewriteOut(up, d); err != nil {
			s.failUpstream(w, d, injectError(err))
			return
		}
		s.forward.ServeHTTP(w, up)
		return
	}
	out := r.WithContext(ctx)
	prepareOutbound(out, r.Header["Te"])
	if r.ContentLength == 0 {
		out.Body = nil // lets the transport retry on a dead idle connection
	}
	if e := s.admit(out, d); e != nil { // LLM budgets (meter.go)
		s.failUpstream(w, d, e)
		return
	}
	defer func() {
		if !d.detached { // a detached stream ends its ticket itself
			d.ev.ticket.Abort() // no-op once the metered body has ended it
		}
	}()
	if err := s.rewriteOut(out, d); err != nil {
		s.failUpstream(w, d, injectError(err))
		return
	}
	resp, err := s.forward.Transport.RoundTrip(out)
	if err == nil && d.bodyRefused != nil && d.bodyRefused() != nil {
		// The body met a placeholder: cutting it (closing the connection,
		// TLS close_notify first) can make the upstream answer the cut
		// request before the close lands. That answer is not relayed.
		_ = resp.Body.Close()
		err = placeholderError(d.bodyRefused())
	}
	var stream bool
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		_ = resp.Body.Close() // the agent asked for no upgrade: nothing to splice
		err = newError(http.StatusBadGateway, CodeUpstreamError, "upstream "+d.host+" switched protocols unasked",
			"send Connection: Upgrade and Upgrade headers to open a WebSocket")
	}
	if err == nil {
		// Judged before scrubbing, which drops the length of what it scrubs.
		stream = resp.ContentLength < 0 || isEventStream(resp.Header)
		if err = s.observe(resp); err != nil { // the response observer chain (observe.go)
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		s.failUpstream(w, d, err)
		return
	}
	s.relayResponse(w, resp, d, stream)
}

// prepareOutbound turns a server request into a client request: no
// request URI, no hop-by-hop headers (those named by Connection too), no
// client-supplied forwarding headers, no Go default User-Agent.
func prepareOutbound(out *http.Request, te []string) {
	out.RequestURI, out.Close = "", false
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	h := out.Header
	removeHopByHop(h)
	if headerHasToken(te, "trailers") {
		h["Te"] = []string{"trailers"}
	}
	for _, k := range [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(h, k)
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
}

// hopHeaders are the hop-by-hop headers of RFC 9110 (and the proxy ones).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// relayResponse writes resp to the agent: headers, body, trailers. A
// stream (SSE, or a body the upstream sent without a length) is flushed on
// every write; a body of known length goes out as the buffer fills. A
// stream the lean loop serves waits for the upstream without a goroutine
// (stream.go): relayResponse may return before it ends.
func (s *Server) relayResponse(w http.ResponseWriter, resp *http.Response, d *decision, stream bool) {
	flusher := writeResponseHead(w, resp, stream)
	if flusher != nil {
		if src := parkableSource(resp.Body); src.wait != nil {
			s.relayDetachable(w, resp, d, flusher, src)
			return
		}
	}
	defer resp.Body.Close()
	s.endBody(w, resp, d, copyBody(w, resp.Body, flusher))
}

// endBody ends the relay of resp's body: the read error readErr marks
// the request aborted, else the trailers follow the body.
func (s *Server) endBody(w http.ResponseWriter, resp *http.Response, d *decision, readErr error) {
	if readErr != nil {
		_ = resp.Body.Close()
		s.bodyFailed(d, readErr)
		return
	}
	_ = resp.Body.Close() // populates resp.Trailer
	writeTrailers(w, resp)
}

//go:noinline
func (s *Server) bodyFailed(d *decision, err error) {
	d.aborted = true
	s.log.Debug("upstream body failed", fieldAgent(d.agent), fieldHost(d.host), fieldErr(err))
}

//go:noinline
func writeTrailers(w http.ResponseWriter, resp *http.Response) {
	dst := w.Header()
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
}

// writeResponseHead hands resp's headers to w and writes the head; for a
// stream it flushes the head at once and returns the flusher. It is a
// function of its own (as are bodyFailed and writeTrailers) so that their
// locals (map iterators, log fields) are not on the stack of the
// goroutine while a stream waits in copyBody: ten thousand streams wait
// there, and a goroutine's stack only shrinks to 8 KiB when under a
// quarter of it is used.
//
//go:noinline
func writeResponseHead(w http.ResponseWriter, resp *http.Response, stream bool) http.Flusher {
	removeHopByHop(resp.Header)
	dst := w.Header()
	for k, vv := range resp.Header {
		if dst[k] == nil {
			dst[k] = vv
		} else {
			dst[k] = append(dst[k], vv...)
		}
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		dst["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	var flusher http.Flusher
	if stream {
		flusher, _ = w.(http.Flusher)
		if flusher != nil {
			flusher.Flush() // the head now: a stream's first event (or gRPC message) may be long in coming
		}
	}
	if flusher != nil && isEventStream(dst) { // perf: an SSE head goes out before the first event
		flusher.Flush()
	}
	return flusher
}

// copyBody copies body to w, flushing after each write when flusher is
// set (SSE, unknown lengths; parked between bursts where it can be). It returns the read error, if any; a write
// error (the agent went away) ends the copy silently.
func copyBody(w io.Writer, body io.Reader, flusher http.Flusher) error {
	if flusher != nil {
		return copyStream(w, body, flusher)
	}
	bp := bufpool.Get(false)
	defer bufpool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// streamWaitSize is the buffer a stream waits for its next event with.
const streamWaitSize = 512

// sendChunk relays what one read of a stream returned (b, rerr): written
// and flushed at once. done means the copy ends: the agent is gone (nil),
// the body ended (nil) or rerr is the error to report.
func sendChunk(w io.Writer, flusher http.Flusher, b []byte, rerr error) (done bool, err error) {
	if len(b) > 0 {
		if _, werr := w.Write(b); werr != nil {
			return true, nil
		}
		flusher.Flush()
	}
	if rerr == io.EOF {
		return true, nil
	}
	return rerr != nil, rerr
}

// copyStream copies a stream, flushing each write. A stream waits for its
// next event most of its life, and the read it waits in holds its buffer:
// it waits with a small one and takes a pooled 4 KiB buffer (internal/bufpool)
// only while data comes faster than the small one holds (a read filled
// it), giving it back after a read that the small one would have held.
func copyStream(w io.Writer, body io.Reader, flusher http.Flusher) error {
	small := make([]byte, streamWaitSize)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			bufpool.Put(big)
		}
	}()
	for {
		n, err := body.Read(buf)
		if done, err := sendChunk(w, flusher, buf[:n], err); done {
			return err
		}
		switch {
		case big == nil && n == len(small):
			big = bufpool.Get(true)
			buf = *big
		case big != nil && n < len(small):
			bufpool.Put(big)
			big, buf = nil, small
		}
	}
}

// isEventStream reports whether h declares a text/event-stream body.
func isEventStream(h http.Header) bool {
	ct := strings.TrimSpace(h.Get("Content-Type"))
	const sse = "text/event-stream"
	return len(ct) >= len(sse) && strings.EqualFold(ct[:len(sse)], sse) &&
		(len(ct) == len(sse) || ct[len(sse)] == ';' || ct[len(sse)] == ' ')
}

// A stream that waits holding nothing
//
// copyStream's small buffer, the scrubber's buffers, the read frames of
// TLS and the chunked reader: a stream waiting in Read holds all of them
// for as long as the upstream stays quiet. When the relay can see through
// the body to the lean upstream client's (the idle timer, perhaps the
// scrubber, nothing else: no decoder or meter that could hold bytes of
// its own), it waits for the upstream connection to be readable first
// (h1's ArmReadable and WaitReadable, which see bytes buffered in bufio
// and TLS too), holding no buffer and, where it can, no goroutine
// (stream.go), and takes a pooled buffer only for the reads that follow.

// streamWaiter is the lean upstream client's response body
// (internal/h1's clientBody).
type streamWaiter interface{ WaitReadable() error }

// streamArmer is the lean client's body too: WaitReadable without a
// goroutine.
type streamArmer interface{ ArmReadable(ready func()) bool }

// parkable is what a stream's wait (stream.go) needs of a body: wait blocks until a Read
// need not wait on the upstream; arm is wait without a goroutine (false:
// read now; true: ready runs when a Read need not wait); park hands the
// buffers above the connection back and reports whether a Read would
// reach the connection (nil: there are no such buffers).
type parkable struct {
	wait func() error
	arm  func(ready func()) bool
	park func() bool
}

// waitSource finds the upstream client's body under body, through the
// wrappers known to hold no bytes of their own, and the scrubber above
// it if there is one; src is nil when there is none.
func waitSource(body io.Reader) (src streamWaiter, sr *scrub.Reader) {
	if sb, ok := body.(*scrubBody); ok {
		if sr, ok = sb.Reader.(*scrub.Reader); !ok {
			return nil, nil
		}
		body = sr.Source()
	}
	if ib, ok := body.(*idleBody); ok { // the transport's idle timer holds no bytes
		body = ib.ReadCloser
	}
	if sw, ok := body.(streamWaiter); ok { // the lean client's body (or the meter's over it)
		return sw, sr
	}
	return nil, nil
}

// parkableSource is what the relay waits with under body; its wait is
// nil when there is nothing to wait on.
func parkableSource(body io.Reader) parkable {
	src, sr := waitSource(body)
	if src == nil {
		return parkable{}
	}
	p := parkable{wait: src.WaitReadable}
	if sr != nil {
		p.park = sr.Park
	}
	if sa, ok := src.(streamArmer); ok {
		p.arm = sa.ArmReadable
	}
	return p
}
