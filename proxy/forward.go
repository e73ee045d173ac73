package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/egress"
	"github.com/airlock/airlock/proxy/internal/h1"
	"github.com/airlock/airlock/proxy/internal/oauth2"
)

// defaultTimeout bounds the wait for response headers, and the idle time
// between body bytes, when a rule sets no timeout.
const defaultTimeout = 60 * time.Second

// newTransport is the one upstream transport every request shares: many
// idle connections per host, HTTP/2 where the upstream offers it, never a
// proxy of its own (airlock must not chain to its own HTTPS_PROXY), and the
// agent's Accept-Encoding passed through untouched.
func newTransport(d *egress.Dialer, roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 0, // send bodies at once: 100-continue adds no wait
		DisableCompression:    true,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(1024)},
	}
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// newForwarder builds the reverse proxy that forwards upgrade requests
// (WebSockets, spliced) and holds the upstream transport chain that
// relay (relay.go) uses for every other request.
func (s *Server) newForwarder() *httputil.ReverseProxy {
	lean := &h1.Client{Dial: s.leanDial, Ready: s.leanReady, IdleTimeout: s.transport.IdleConnTimeout,
		MaxIdlePerHost: s.transport.MaxIdleConnsPerHost, MaxIdle: s.transport.MaxIdleConns}
	context.AfterFunc(s.base, func() { lean.CloseIdleConnections(true) }) // Shutdown cancels s.base
	return &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    &oauth2.Retry{Base: &upstream{base: s.transport, lean: lean, s: s}, Tokens: s.tokens, Judged: judgedWith},
		BufferPool:   bufferPool{},
		ErrorLog:     zap.NewStdLog(s.log.Named("forward")),
		ErrorHandler: s.upstreamError,
		// ModifyResponse scrubs echoes of the injected secret (scrubresp.go).
		ModifyResponse: s.observe,
	}
}

// rewrite is the ReverseProxy's hook (upgrades). relay has already shaped
// the inbound request with rewriteOut (which can fail, unlike this hook);
// the ReverseProxy's clone keeps what it set.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {}

// rewriteOut shapes the outbound request: the pinned destination, the
// judged path (exactly what the rule matched), no proxy, method-override
// or rewrite headers, placeholders substituted or refused, the rule's
// header policy and the credential. A refusal is returned.
func (s *Server) rewriteOut(out *http.Request, d *decision) error {
	out.URL.Scheme = d.scheme
	out.URL.Host = urlHost(d.host, d.port, d.scheme)
	out.Host = ""
	if d.judged {
		d.path.SetURL(out.URL) // judged and forwarded never disagree
	}
	for k := range out.Header {
		if strings.HasPrefix(k, "Proxy-") {
			delete(out.Header, k)
		}
	}
	policy.StripOverrides(out.Header) // X-HTTP-Method-Override, X-Original-URL, ...
	if d.rule != nil && d.cred != nil && d.rule.Inject.Placeholders {
		// Auth headers out except those holding a placeholder, which is
		// then substituted (inject.go); before the secret is injected.
		d.rule.ApplyHeaders(out.Header)
		if err := s.placeholders(out, d); err != nil {
			return err
		}
	} else {
		if err := s.placeholders(out, d); err != nil { // any placeholder: refused
			return err
		}
		if d.rule != nil && d.cred != nil {
			d.rule.ApplyHeaders(out.Header) // agent auth headers out, static headers where absent
		} else if d.rule != nil {
			setStaticHeaders(out.Header, d.rule)
		}
	}
	outboundHygiene(out, d) // Via loop marker; identity encoding when injecting (refuse.go)
	if d.cred == nil {
		return nil
	}
	return s.inject(out, d.rule, d.cred)
}

// urlHost is the URL host of host and port: IPv6 in brackets, the port
// left out where it is the scheme's; one allocation at most.
func urlHost(host string, port int, scheme string) string {
	v6 := strings.IndexByte(host, ':') >= 0
	withPort := port != defaultPort(scheme)
	if !v6 && !withPort {
		return host
	}
	var b [80]byte
	buf := b[:0]
	if v6 {
		buf = append(append(append(buf, '['), host...), ']')
	} else {
		buf = append(buf, host...)
	}
	if withPort {
		buf = strconv.AppendInt(append(buf, ':'), int64(port), 10)
	}
	return string(buf)
}

// setStaticHeaders applies a non-injecting rule's static headers: only
// where the agent sent none, unless headers_override.
func setStaticHeaders(h http.Header, r *policy.Rule) {
	for k, v := range r.Headers {
		if _, ok := h[http.CanonicalHeaderKey(k)]; ok && !r.HeadersOverride {
			continue
		}
		h.Set(k, v)
	}
}

// injectError is the refusal for a failed injection: the injector's own
// *Error, or CREDENTIAL_INVALID.
func injectError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(http.StatusBadGateway, CodeCredentialInvalid, err.Error(), "check the credential's value and the rule's inject settings")
}

// upstream applies the rule's timeout: to the response headers, then to
// each idle gap in the body (a stream may last as long as it keeps talking).
// It sends HTTP/1.1 with the lean client (package h1: no goroutine pair
// per upstream connection), HTTP/2 and upgrades with the transport.
type upstream struct {
	base http.RoundTripper // net/http's Transport: h2 upstreams, upgrades
	lean *h1.Client        // everything else
	s    *Server
}

// useLean tells whether req goes through the lean client: not an upgrade
// (the ReverseProxy splices its connection), not an upstream known to
// speak h2.
func (u *upstream) useLean(req *http.Request) bool {
	return u.lean != nil && req.Header["Upgrade"] == nil && !u.s.pre.knownH2(req.URL)
}

// leanDial is the lean client's dialer: the guarded dialer, and for TLS
// the transport's handshake (predialled connections first, sessions
// resumed). A connection that negotiated h2 goes to the predialer, where
// the transport's dial takes it.
func (s *Server) leanDial(ctx context.Context, scheme, addr string) (net.Conn, error) {
	if scheme == "http" {
		return s.dialer.DialContext(ctx, "tcp", addr)
	}
	c, err := s.dialTLS(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.leanTLS(addr, c)
}

// leanReady is the lean client's Ready: the predialled connection to addr
// (waiting for a pending predial), nil when there is none.
func (s *Server) leanReady(ctx context.Context, scheme, addr string) (net.Conn, error) {
	if scheme == "http" {
		return nil, nil
	}
	c := s.pre.take(ctx, addr)
	if c == nil {
		return nil, nil
	}
	return s.leanTLS(addr, c)
}

// leanTLS hands c, a fresh TLS connection to addr, to the lean client, or
// to the predialer (where the transport's dial takes it) when it
// negotiated h2.
func (s *Server) leanTLS(addr string, c net.Conn) (net.Conn, error) {
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		s.pre.offer(addr, c)
		return nil, fmt.Errorf("%s: %w", addr, h1.ErrNotHTTP1)
	}
	return c, nil
}

var errUpstreamTimeout = errors.New("upstream timed out")

// RoundTrip sends req with the rule's timeout: through the lean client,
// whose connection timer keeps it (no timer, context or body wrapper per
// request), or through the transport (roundTripBase). An upstream that
// turns out to choose h2 on the lean client's dial is handed to the
// transport with that connection (leanDial).
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	d := decisionFrom(req.Context())
	timeout := defaultTimeout
	if d.rule != nil && d.rule.Timeout > 0 {
		timeout = d.rule.Timeout
	}
	if !u.useLean(req) {
		return u.roundTripBase(req, d, timeout)
	}
	start := time.Now()
	resp, err := u.lean.Send(req, timeout)
	d.ev.upstream = time.Since(start)
	switch {
	case errors.Is(err, h1.ErrNotHTTP1):
		return u.roundTripBase(req, d, timeout)
	case errors.Is(err, h1.ErrTimeout):
		return nil, errUpstreamTimeout
	}
	return resp, err
}

// roundTripBase sends req through the transport, the timeout kept by a
// timer of its own that cancels the request.
func (u *upstream) roundTripBase(req *http.Request, d *decision, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var timedOut atomic.Bool
	timer := time.AfterFunc(timeout, func() { timedOut.Store(true); cancel() })
	start := time.Now()
	resp, err := u.base.RoundTrip(req.WithContext(ctx))
	d.ev.upstream = time.Since(start)
	if err != nil {
		timer.Stop()
		cancel()
		if timedOut.Load() {
			return nil, errUpstreamTimeout
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		timer.Stop() // the upgraded stream is spliced until either side closes
		return resp, nil
	}
	timer.Reset(timeout)
	resp.Body = &idleBody{ReadCloser: resp.Body, timer: timer, timeout: timeout, cancel: cancel, d: d}
	return resp, nil
}

// idleBody re-arms the idle timer on every read and cancels the upstream
// request when the body goes quiet for too long. A read error other than
// EOF marks the stream aborted.
type idleBody struct {
	io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelFunc
	d       *decision
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF {
		b.d.aborted = true
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	b.cancel()
	return b.ReadCloser.Close()
}

// upstreamError is the ReverseProxy's error handler (upgrades).
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	s.failUpstream(w, decisionFrom(r.Context()), err)
}

// failUpstream answers for a request the upstream could not serve.
func (s *Server) failUpstream(w http.ResponseWriter, d *decision, err error) {
	e := classify(err, d)
	if d != nil {
		d.ev.fail(e)
		d.ev.reason = scrubError(err, d) // the cause on the audit line (x509 text, ...)
		s.log.Debug("upstream failed", fieldAgent(d.agent), fieldHost(d.host), zap.String("error", scrubError(err, d)))
	}
	e.Write(w)
}

// classify maps a transport error to airlock's error codes. Messages name
// the host and the kind of failure, never the raw error (which could carry
// a URL with an injected query parameter).
func classify(err error, d *decision) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if d != nil && d.bodyRefused != nil {
		if perr := d.bodyRefused(); perr != nil { // the body met a placeholder (placeholder.Sniff)
			return placeholderError(perr)
		}
	}
	host := ""
	if d != nil {
		host = d.host + ":" + itoa(d.port)
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certErr     *tls.CertificateVerificationError
		netErr      net.Error
		dnsErr      *net.DNSError
	)
	switch {
	case errors.Is(err, errUpstreamTimeout) || errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, CodeUpstreamError, "upstream "+host+" did not answer in time",
			"raise the rule's timeout if the upstream is slow, or check that it is up")
	case errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr):
		return newError(http.StatusBadGateway, CodeUpstreamError, "upstream "+host+" presented a certificate airlock does not trust",
			"airlock verifies upstream TLS against the system roots (SSL_CERT_FILE overrides them)")
	case errors.As(err, &dnsErr):
		return newError(http.StatusBadGateway, CodeUpstreamError, "cannot resolve "+host, "check the host name")
	case errors.As(err, &netErr) && netErr.Timeout():
		return newError(http.StatusGatewayTimeout, CodeUpstreamError, "upstream "+host+" timed out", "check that the upstream is up")
	}
	return newError(http.StatusBadGateway, CodeUpstreamError, "cannot reach upstream "+host,
		"check that the upstream is up and reachable from airlock")
}

// scrubError renders err for logs with the request's secret masked.
func scrubError(err error, d *decision) string {
	msg := err.Error()
	if d != nil && d.cred != nil && d.cred.Value.Len() > 0 {
		msg = strings.ReplaceAll(msg, string(d.cred.Value.Bytes()), "[REDACTED]")
	}
	return msg
}
