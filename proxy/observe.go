package proxy

import (
	"compress/gzip"
	"fmt"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/internal/grpcwire"
	"github.com/airlock/airlock/vault"
)

// Compression and scrubbing
//
// The scrubber must see plaintext. On requests that carry an injected
// credential, rewrite asks the upstream for Accept-Encoding: identity. An
// upstream that compresses anyway with gzip is decompressed (compress/gzip,
// streaming) and the agent receives identity; any other Content-Encoding
// (br, zstd, deflate, ...) cannot be scrubbed, so the response is refused
// with 502 UPSTREAM_ERROR rather than passed through unchecked.

// Observer sees the upstream response to a judged request once, before the
// agent does (HTTP proxy and RPC http_request alike; not 101 upgrades,
// which are spliced). It may read resp's head and replace resp.Body with a
// wrapper that transforms or meters the stream as the agent reads it (an
// io.ReadCloser around the body it was given); it must never buffer a
// whole streamed body. dec is the decision the request was judged by. An
// error refuses the response: the agent gets 502 (or the *Error's code).
//
// The chain runs the scrubber first (it removes echoes of the credential
// from headers and body), then Config.Observers in order, so every
// observer sees the scrubbed stream.
type Observer func(resp *http.Response, dec *door.Decision) error

// observe runs the observer chain on resp.
func (s *Server) observe(resp *http.Response) error {
	if err := s.scrubResponse(resp); err != nil {
		return err
	}
	s.meterResponse(resp) // reads the scrubbed stream (meter.go)
	if len(s.observers) == 0 || resp.Request == nil {
		return nil
	}
	d := decisionFrom(resp.Request.Context())
	if d == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	dec := d.public()
	for _, o := range s.observers {
		if err := o(resp, dec); err != nil {
			return err
		}
	}
	return nil
}

// public is d as the doors and observers see it.
func (d *decision) public() *door.Decision {
	if d.pub == nil {
		d.pub = &door.Decision{Agent: d.agent, Scheme: d.scheme, Host: d.host, Port: d.port, Path: d.ev.path,
			Rule: d.rule, Grant: d.grant, Credential: d.cred, Verdict: d.ev.decision, State: d}
	}
	return d.pub
}

// scrubResponse is the first observer; it runs on every upstream response (relay, the RPC door and
// the ReverseProxy's ModifyResponse for upgrades): on responses to requests
// with an injected credential it replaces echoes of the secret in headers,
// wraps the body in a streaming scrubber and drops Content-Length (the
// scrubbed length differs). 101 upgrades are spliced unscrubbed.
func (s *Server) scrubResponse(resp *http.Response) error {
	if resp.Request == nil {
		return nil
	}
	d := decisionFrom(resp.Request.Context())
	if d == nil || d.cred == nil || resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	if err := scrub.RefusePartial(resp.StatusCode, resp.Header); err != nil { // Range is stripped (outboundHygiene)
		return partialError(err)
	}
	r := s.cachedReplacer(d)
	if r == nil {
		return nil
	}
	e := &d.echo // one response per decision: no allocation of its own
	e.s, e.d = s, d
	e.add(r.ScrubHeader(resp.Header))
	if resp.Body == nil || resp.Body == http.NoBody || resp.Request.Method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		e.report()
		return nil
	}
	if grpcwire.Is(resp.Header) { // length-prefixed messages, scrubbed one by one (package grpcwire)
		return grpcwire.Scrub(resp, r, e.add, e.report)
	}
	if whole, err := scrub.Whole(resp, r, e.add, e.report, isEventStream(resp.Header)); whole { // short known-length bodies
		return err
	}
	body, err := plainBody(resp)
	if err != nil {
		e.report()
		return err
	}
	resp.Body = &scrubBody{Reader: scrub.NewReader(body, r, e.add), closer: resp.Body, e: e, trailer: resp, r: r}
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	return nil
}

// replacerFor builds the scrub.Replacer for d's credential, or nil when the
// secret is too short to scrub.
func (s *Server) replacerFor(d *decision, live []string) *scrub.Replacer {
	secret := d.cred.Value.Bytes()
	var extra [][]byte
	if d.rule != nil && d.rule.Inject.Type == policy.InjectBasic {
		if v := basicValue(d.rule, d.cred); len(v) > len("Basic ") {
			extra = append(extra, []byte(v[len("Basic "):]))
		}
	}
	for _, t := range tokenSecrets(d.cred, live) { // oauth2 tokens and client secrets, aws keys
		extra = append(extra, []byte(t))
	}
	forms := scrub.Forms(secret, extra...)
	if len(forms) == 0 {
		return nil
	}
	return scrub.NewReplacer(forms, []byte("[REDACTED:"+d.cred.Path+"]"))
}

// replacerKey names what a replacer scrubs: a credential (a vault
// snapshot's credentials are immutable, so the pointer identifies the
// secret, and a cached key holds it alive: its address is never reused
// while cached), the rule when its injection adds a form of its own (Basic
// joins the rule's username to the secret), and an oauth2 credential's
// live access tokens. The header cache (inject.go) keys by credential and
// rule.
type replacerKey struct {
	cred *vault.Credential
	rule *policy.Rule
	live string // the live tokens, sorted, NUL-separated
}

// cachedReplacer is replacerFor, memoised: rules that inject one
// credential the same way share a replacer (a policy of one rule per
// host built one per host, 140 µs on a new host's first request before
// NewReplacer stopped allocating), and an oauth2 credential gets a new
// one when its live tokens change, not one per request.
func (s *Server) cachedReplacer(d *decision) *scrub.Replacer {
	k := replacerKey{cred: d.cred}
	if d.rule != nil && d.rule.Inject.Type == policy.InjectBasic {
		k.rule = d.rule
	}
	var live []string
	if vault.KindOf(d.cred) == vault.KindOAuth2 {
		live = s.tokens.Live(d.cred.Path)
		slices.Sort(live)
		k.live = strings.Join(live, "\x00")
	}
	return s.replacers.Get(k, func() *scrub.Replacer { return s.replacerFor(d, live) })
}

// plainBody returns the identity-encoded body of resp (see the comment at
// the top of this file), updating its headers.
func plainBody(resp *http.Response) (io.Reader, error) {
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
		return resp.Body, nil
	case "gzip", "x-gzip":
		resp.Header.Del("Content-Encoding")
		return scrub.RefuseCompressed(&lazyGzip{src: resp.Body}), nil // gzip inside gzip: refused
	}
	return nil, newError(http.StatusBadGateway, CodeUpstreamError,
		fmt.Sprintf("upstream answered with Content-Encoding %q, which airlock cannot scrub for credential echoes", enc),
		"airlock asks for identity encoding on requests it injects; configure the upstream to honour it")
}

// lazyGzip opens the gzip stream on first Read, so scrubResponse never
// blocks on the upstream.
type lazyGzip struct {
	src io.Reader
	zr  *gzip.Reader
}

func (g *lazyGzip) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err != nil {
			return 0, fmt.Errorf("gunzip upstream body: %w", err)
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

// scrubBody is the response body handed to the relay: scrubbed
// bytes, trailers scrubbed at EOF, one audit warning on Close.
type scrubBody struct {
	io.Reader
	closer  io.Closer
	e       *echoes
	trailer *http.Response
	r       *scrub.Replacer
	eof     bool
}

func (b *scrubBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		b.e.add(b.r.ScrubHeader(b.trailer.Trailer))
	}
	return n, err
}

func (b *scrubBody) Close() error {
	b.e.report()
	if sr, ok := b.Reader.(*scrub.Reader); ok {
		sr.Release()
	}
	return b.closer.Close()
}

// echoes counts the secret echoes of one response: the metric as they are
// found, one warning line when the response ends.
type echoes struct {
	s        *Server
	d        *decision
	n        atomic.Int64
	reported atomic.Bool
}

func (e *echoes) add(n int) {
	if n <= 0 {
		return
	}
	e.n.Add(int64(n))
	e.s.metrics.SecretEchoes.WithLabelValues(e.d.cred.Path).Add(float64(n))
}

func (e *echoes) report() {
	n := e.n.Load()
	if n == 0 || e.reported.Swap(true) {
		return
	}
	rule := ""
	if e.d.rule != nil {
		rule = e.d.rule.Name
	}
	e.s.log.Warn("secret echo scrubbed from response",
		fieldAgent(e.d.agent), zap.String("rule", rule), zap.String("credential", e.d.cred.Path),
		fieldHost(e.d.host), zap.Int64("echoes", n))
}
