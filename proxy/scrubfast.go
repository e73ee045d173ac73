package proxy

import (
	"bytes"
	"github.com/airlock/airlock/proxy/internal/scrub"
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
// are now cached and scrub.Reader buffers pooled. And a scrubbed body used
// to lose its Content-Length, which made the forwarder flush headers
// and every write separately and answer chunked: three TLS records and
// syscalls for a 181-byte answer. Short known-length bodies are now
// scrubbed whole and keep an exact Content-Length.

// maxWholeScrub is the largest known-length body scrubbed whole in
// ModifyResponse; longer ones, unknown lengths and SSE stream through a
// scrub.Reader.
const maxWholeScrub = 64 << 10

// maxCachedReplacers bounds the scrub.Replacer cache; it is cleared when full
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
	m  map[replacerKey]*scrub.Replacer
}

// cachedReplacer is replacerFor, memoised for static credentials. Token
// credentials (oauth2, aws) are built every time: their live tokens
// change.
func (s *Server) cachedReplacer(d *decision) *scrub.Replacer {
	if vault.KindOf(d.cred) != vault.KindStatic {
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
		c.m = make(map[replacerKey]*scrub.Replacer)
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
func scrubWhole(resp *http.Response, r *scrub.Replacer, e *echoes) (bool, error) {
	if resp.ContentLength < 0 || resp.ContentLength > maxWholeScrub || len(resp.TransferEncoding) > 0 {
		return false, nil
	}
	if enc := strings.TrimSpace(headerValue(resp.Header, "Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		return false, nil
	}
	if isEventStream(resp.Header) {
		return false, nil
	}
	wb, err := scrub.ReadWhole(resp.Body, resp.ContentLength)
	_ = resp.Body.Close()
	if err != nil {
		return true, err
	}
	body := wb.Bytes()
	if scrubbed, n := r.ReplaceAll(body); n > 0 { // as on the streaming path: a scrubbed body has no length
		_ = wb.Close() // scrubbed is a copy
		e.add(n)
		e.report()
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
