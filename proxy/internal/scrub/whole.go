package scrub

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Scrubbing fast paths. Per-response scrubbing used to cost ~50 KiB and
// ~60 allocations (the secret's forms and the read buffers), most of what
// airlock allocated per proxied request: the proxy now caches the
// replacers of static credentials and [Reader] buffers are pooled. And a
// scrubbed body used to lose its Content-Length, which made the forwarder
// flush headers and every write separately and answer chunked: three TLS
// records and syscalls for a 181-byte answer. Short known-length bodies are now
// scrubbed whole and keep an exact Content-Length.

// MaxWhole is the largest known-length body scrubbed whole ([Whole]);
// longer ones, unknown lengths and SSE stream through a [Reader].
const MaxWhole = 64 << 10

// Whole scrubs a short identity-encoded body of known length at once
// and, when the body held no echo, keeps its Content-Length, so the agent
// gets one plain response written in one piece. It reports false, leaving
// resp alone, when the body does not qualify (stream: an event stream,
// never read whole). The wait is bounded: the upstream declared the
// length, and the idle timeout of its body applies. add is told of the
// echoes replaced, then report runs, when the body held any.
func Whole(resp *http.Response, r *Replacer, add func(int), report func(), stream bool) (bool, error) {
	if resp.ContentLength < 0 || resp.ContentLength > MaxWhole || len(resp.TransferEncoding) > 0 {
		return false, nil
	}
	if enc := strings.TrimSpace(headerValue(resp.Header, "Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return false, nil
	}
	if stream {
		return false, nil
	}
	wb, err := ReadWhole(resp.Body, resp.ContentLength)
	_ = resp.Body.Close()
	if err != nil {
		return true, err
	}
	body := wb.Bytes()
	if scrubbed, n := r.ReplaceAll(body); n > 0 { // as on the streaming path: a scrubbed body has no length
		_ = wb.Close() // scrubbed is a copy
		add(n)
		report()
		resp.Body = io.NopCloser(bytes.NewReader(scrubbed))
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return true, nil
	}
	resp.Body = wb
	if n, err := strconv.ParseInt(headerValue(resp.Header, "Content-Length"), 10, 64); err != nil || n != int64(len(body)) {
		resp.Header.Set("Content-Length", strconv.Itoa(len(body))) // what the agent gets is what was read
	}
	return true, nil
}

// headerValue is h.Get(key) for a key already in canonical form, without
// canonicalising it again.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
