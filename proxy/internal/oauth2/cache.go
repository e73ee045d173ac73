// Package oauth2 is the token side of oauth2 credentials: access tokens
// fetched from the credential's token endpoint (client_credentials or
// refresh_token grant), cached in the state store, refreshed ahead of
// expiry (one fetch however many requests wait), never used past expiry,
// and injected as the rule's header.
package oauth2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/state"
	"github.com/airlock/airlock/vault"
	"github.com/prometheus/client_golang/prometheus"
)

// Field names of the cache's log lines beyond the shared audit.Field* ones.
const (
	fieldFailures  = "failures" // consecutive failed token requests
	fieldExpiresIn = "expires_in"
)

// OAuth2 token cache tuning.
const (
	tokenFetchTimeout = 30 * time.Second // one token endpoint exchange, dial to body
	refreshAheadMax   = 30 * time.Second // refresh this long before expiry...
	backoffMin        = time.Second      // ...and after a failure wait this long,
	backoffMax        = 30 * time.Second // doubling up to this
	retryBodyLimit    = 1 << 20          // bodies up to this are buffered so a 401 can be retried
)

// Cache holds the access tokens of oauth2 credentials, one per
// credential path × settings (token url, client, scopes, audience, grant).
// Tokens are fetched on first use, refreshed ahead of expiry in the
// background, fetched once however many requests wait (single flight), and
// never used past their expiry: when the endpoint fails the requests fail.
type Cache struct {
	transport http.RoundTripper // the server's guarded upstream transport
	vault     func() *vault.Vault
	metrics   Metrics
	log       *zap.Logger
	now       func() time.Time
	store     state.Tokens // the tokens themselves
	leaser    state.Leaser // non-nil: a store shared by a fleet (fleet.go)

	group singleflight.Group

	mu      sync.Mutex             // guards entries and pending
	entries map[string]*tokenEntry // by cacheKey
	pending map[string]string      // credential path → rotated refresh token not yet saved
}

// Metrics are the collectors the cache counts in.
type Metrics struct {
	Requests *prometheus.CounterVec // credential, result (ok, rejected, error, malformed, unreachable)
	Expiry   *prometheus.GaugeVec   // credential: unix time the cached token expires
}

// Config wires a Cache.
type Config struct {
	Transport http.RoundTripper   // to the token endpoints: the guarded upstream transport
	Vault     func() *vault.Vault // current vault (refresh_token rotation saves into it); nil result: sealed
	Metrics   Metrics
	Log       *zap.Logger
	Store     state.Tokens // nil: an in-memory store
	Now       func() time.Time
}

// tokenEntry is the local state of one token: when to refresh it and the
// failure state of its endpoint. The token is in the store; token and
// expiry here mirror what this process last stored.
type tokenEntry struct {
	path      string
	token     string
	expiry    time.Time
	refreshAt time.Time
	failures  int
	retryAt   time.Time // no new fetch before this after a failure
	lastErr   error
}

// New returns an empty cache.
func New(cfg Config) *Cache {
	if cfg.Store == nil {
		cfg.Store = state.NewMemory()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Metrics.Requests == nil { // counted nowhere
		cfg.Metrics.Requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oauth2_token_requests"}, []string{"credential", "result"})
	}
	if cfg.Metrics.Expiry == nil {
		cfg.Metrics.Expiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "oauth2_token_expiry"}, []string{"credential"})
	}
	c := &Cache{
		transport: cfg.Transport, vault: cfg.Vault, metrics: cfg.Metrics, log: cfg.Log, now: cfg.Now, store: cfg.Store,
		entries: map[string]*tokenEntry{}, pending: map[string]string{},
	}
	c.leaser, _ = cfg.Store.(state.Leaser)
	return c
}

// cacheKey names a token: a changed token url, client, scope set or grant
// is a different token.
func cacheKey(path string, set vault.OAuth2Settings) string {
	h := sha256.New()
	for _, f := range []string{set.TokenURL, set.ClientID, strings.Join(set.Scopes, " "), set.Audience, set.AuthMethod, set.Grant} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return path + "\x00" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Inject sets the rule's header (Authorization: Bearer by default) to a
// current access token, and buffers a small body so a 401 can be retried.
func (c *Cache) Inject(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	tok, err := c.token(out.Context(), cred)
	if err != nil {
		return err
	}
	name, value := TokenHeader(rule, tok)
	if !validHeaderValue(value) {
		return errcode.New(http.StatusBadGateway, errcode.UpstreamError, "the token endpoint of credential "+cred.Path+" issued a token with bytes not allowed in a header", "")
	}
	out.Header.Del(name)
	out.Header.Set(name, value)
	if out.GetBody == nil && out.Body != nil && out.Body != http.NoBody && out.ContentLength > 0 && out.ContentLength <= retryBodyLimit {
		buf := make([]byte, out.ContentLength)
		if _, err := io.ReadFull(out.Body, buf); err != nil {
			return errcode.New(http.StatusBadRequest, errcode.BadRequest, "reading the request body failed", "")
		}
		setBody(out, buf)
	}
	return nil
}

// TokenHeader is the header rule sets for access token tok.
func TokenHeader(rule *policy.Rule, tok string) (name, value string) {
	name = rule.Inject.Header
	if name == "" {
		name = "Authorization"
	}
	tmpl := rule.Inject.Format
	if tmpl == "" {
		tmpl = "Bearer {secret}"
	}
	return name, strings.ReplaceAll(tmpl, "{secret}", tok)
}

// validHeaderValue refuses control characters a token could smuggle into
// the request (CR, LF, NUL).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// setBody makes buf the replayable body of out.
func setBody(out *http.Request, buf []byte) {
	out.ContentLength = int64(len(buf))
	out.Body = io.NopCloser(bytes.NewReader(buf))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
}

// token returns a current access token for cred, fetching one if needed.
func (c *Cache) token(ctx context.Context, cred *vault.Credential) (string, error) {
	set, err := vault.OAuth2SettingsOf(cred)
	if err != nil {
		return "", errcode.New(http.StatusBadGateway, errcode.CredentialInvalid, err.Error(), "store it again with `airlock vault set-oauth2`")
	}
	key := cacheKey(cred.Path, set)
	now := c.now()
	c.mu.Lock()
	e := c.entries[key]
	if e == nil && c.leaser == nil {
		if _, ok, _ := c.store.Token(ctx, key); ok { // stored by another holder
			e = &tokenEntry{path: cred.Path}
			c.entries[key] = e
		}
	}
	if e != nil && c.leaser == nil { // a fleet's token is read when it is due (fleet.go)
		c.syncEntry(ctx, key, e)
	}
	switch {
	case e != nil && e.token != "" && now.Before(e.refreshAt):
		tok := e.token
		c.mu.Unlock()
		return tok, nil
	case e != nil && e.token != "" && now.Before(e.expiry):
		tok := e.token
		if !now.Before(e.retryAt) { // refresh ahead in the background; this request uses the current token
			c.group.DoChan(key, func() (any, error) { return c.get(key, cred, set) })
		}
		c.mu.Unlock()
		return tok, nil
	case e != nil && now.Before(e.retryAt):
		err := e.lastErr
		c.mu.Unlock()
		return "", err
	}
	c.mu.Unlock()
	ch := c.group.DoChan(key, func() (any, error) { return c.get(key, cred, set) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", errcode.New(http.StatusGatewayTimeout, errcode.UpstreamError, "gave up waiting for an access token for credential "+cred.Path, "")
	}
}

// fresh returns key's token when it is not yet due for a refresh. A flight
// asks first: a caller that found no token may start its flight just after
// another one ended with a fresh token, and a second exchange would spend
// a rotating refresh token twice.
func (c *Cache) fresh(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && e.token != "" && c.now().Before(e.refreshAt) {
		return e.token, true
	}
	return "", false
}

// fetch runs one token exchange (under the single flight) and records the
// result.
func (c *Cache) fetch(key string, cred *vault.Credential, set vault.OAuth2Settings) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
	defer cancel()
	start := c.now()
	var tr *tokenResponse
	var err error
	if set.Grant == vault.GrantRefreshToken {
		tr, err = c.refreshGrant(ctx, cred, set)
	} else {
		var sec vault.OAuth2Secret
		if sec, err = vault.OAuth2SecretOf(cred); err == nil {
			tr, err = c.exchange(ctx, cred.Path, set, sec, nil)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryLocked(key, cred.Path)
	if err != nil {
		c.metrics.Requests.WithLabelValues(cred.Path, tokenResult(err)).Inc()
		return "", c.failLocked(e, err)
	}
	e.token, e.expiry = tr.AccessToken, start.Add(tr.lifetime)
	e.refreshAt = e.expiry.Add(-refreshMargin(tr.lifetime))
	if err := c.store.PutToken(ctx, key, state.Token{Value: e.token, Expiry: e.expiry}); err != nil {
		c.log.Warn("token not stored", zap.String(audit.FieldCredential, cred.Path), zap.String(audit.FieldError, err.Error()))
	}
	e.failures, e.retryAt, e.lastErr = 0, time.Time{}, nil
	c.metrics.Requests.WithLabelValues(cred.Path, "ok").Inc()
	c.metrics.Expiry.WithLabelValues(cred.Path).Set(float64(e.expiry.Unix()))
	c.log.Info("token issued", zap.String(audit.FieldCredential, cred.Path), zap.Duration(fieldExpiresIn, tr.lifetime))
	return tr.AccessToken, nil
}

// entryLocked is key's cache entry, made on first use; c.mu is held.
func (c *Cache) entryLocked(key, path string) *tokenEntry {
	e := c.entries[key]
	if e == nil {
		e = &tokenEntry{path: path}
		c.entries[key] = e
	}
	return e
}

// failLocked records a failed token request on e (backoff before the
// next try), logs it and returns the error agents get; c.mu is held.
func (c *Cache) failLocked(e *tokenEntry, err error) error {
	e.failures++
	e.retryAt = c.now().Add(backoff(e.failures))
	e.lastErr = asTokenError(e.path, err)
	c.log.Warn("token request failed", zap.String(audit.FieldCredential, e.path), zap.Int(fieldFailures, e.failures), zap.String(audit.FieldError, e.lastErr.Error()))
	return e.lastErr
}

// refreshMargin is how long before expiry a token is refreshed: 30 s, or a
// tenth of the lifetime for short tokens.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(refreshAheadMax, lifetime/10)
}

func backoff(failures int) time.Duration {
	d := backoffMin
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// Invalidate drops cred's token if it is the one in header value used (the
// upstream answered 401 to it); a token fetched since is kept.
func (c *Cache) Invalidate(rule *policy.Rule, cred *vault.Credential, used string) {
	set, err := vault.OAuth2SettingsOf(cred)
	if err != nil {
		return
	}
	key := cacheKey(cred.Path, set)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && e.token != "" {
		if _, v := TokenHeader(rule, e.token); v == used {
			_ = c.store.DropToken(context.Background(), key, e.token)
			e.token, e.expiry, e.refreshAt = "", time.Time{}, time.Time{}
		}
	}
}

// Live lists the access tokens currently cached for the credential path
// (for the scrubber).
func (c *Cache) Live(path string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.entries {
		if e.path == path && e.token != "" {
			out = append(out, e.token)
		}
	}
	return out
}

// syncEntry reloads e's token from the store (another holder may have
// refreshed or dropped it). c.mu is held.
func (c *Cache) syncEntry(ctx context.Context, key string, e *tokenEntry) {
	t, ok, err := c.store.Token(ctx, key)
	switch {
	case err != nil:
		return // keep what this process knows
	case !ok:
		e.token, e.expiry, e.refreshAt = "", time.Time{}, time.Time{}
	case t.Value != e.token:
		lifetime := t.Expiry.Sub(c.now())
		e.token, e.expiry, e.refreshAt = t.Value, t.Expiry, t.Expiry.Add(-refreshMargin(max(lifetime, 0)))
	}
}

// asTokenError makes sure what reaches the agent is an *errcode.Error.
func asTokenError(path string, err error) *errcode.Error {
	var e *errcode.Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, vault.ErrBadTokenCredential) {
		return errcode.New(http.StatusBadGateway, errcode.CredentialInvalid, err.Error(), "store it again with `airlock vault set-oauth2`")
	}
	return errcode.New(http.StatusBadGateway, errcode.UpstreamError, "credential "+path+": token request failed",
		"check the token endpoint; airlock retries with backoff")
}
