package proxy

import (
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
	"github.com/airlock/airlock/vault"
)

// OAuth2 token cache tuning.
const (
	tokenFetchTimeout = 30 * time.Second // one token endpoint exchange, dial to body
	refreshAheadMax   = 30 * time.Second // refresh this long before expiry...
	backoffMin        = time.Second      // ...and after a failure wait this long,
	backoffMax        = 30 * time.Second // doubling up to this
	retryBodyLimit    = 1 << 20          // bodies up to this are buffered so a 401 can be retried
)

// tokenCache holds the access tokens of oauth2 credentials, one per
// credential path × settings (token url, client, scopes, audience, grant).
// Tokens are fetched on first use, refreshed ahead of expiry in the
// background, fetched once however many requests wait (single flight), and
// never used past their expiry: when the endpoint fails the requests fail.
type tokenCache struct {
	transport http.RoundTripper // the server's guarded upstream transport
	vault     func() *vault.Vault
	metrics   *Metrics
	log       *zap.Logger
	now       func() time.Time

	group singleflight.Group

	mu      sync.Mutex             // guards entries and pending
	entries map[string]*tokenEntry // by cacheKey
	pending map[string]string      // credential path → rotated refresh token not yet saved
}

// tokenEntry is one cached token and the failure state of its endpoint.
type tokenEntry struct {
	path      string
	token     string
	expiry    time.Time
	refreshAt time.Time
	failures  int
	retryAt   time.Time // no new fetch before this after a failure
	lastErr   error
}

func newTokenCache(s *Server) *tokenCache {
	return &tokenCache{
		transport: s.transport, vault: s.Vault, metrics: s.metrics, log: s.log.Named("oauth2"), now: time.Now,
		entries: map[string]*tokenEntry{}, pending: map[string]string{},
	}
}

// cacheKey names a token: a changed token url, client, scope set or grant
// is a different token.
func cacheKey(path string, set OAuth2Settings) string {
	h := sha256.New()
	for _, f := range []string{set.TokenURL, set.ClientID, strings.Join(set.Scopes, " "), set.Audience, set.AuthMethod, set.Grant} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return path + "\x00" + hex.EncodeToString(h.Sum(nil)[:12])
}

// inject sets the rule's header (Authorization: Bearer by default) to a
// current access token, and buffers a small body so a 401 can be retried.
func (c *tokenCache) inject(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	tok, err := c.token(out.Context(), cred)
	if err != nil {
		return err
	}
	name, value := tokenHeader(rule, tok)
	if !validHeaderValue(value) {
		return newError(http.StatusBadGateway, CodeUpstreamError, "the token endpoint of credential "+cred.Path+" issued a token with bytes not allowed in a header", "")
	}
	out.Header.Del(name)
	out.Header.Set(name, value)
	if out.GetBody == nil && out.Body != nil && out.Body != http.NoBody && out.ContentLength > 0 && out.ContentLength <= retryBodyLimit {
		buf := make([]byte, out.ContentLength)
		if _, err := io.ReadFull(out.Body, buf); err != nil {
			return newError(http.StatusBadRequest, CodeBadRequest, "reading the request body failed", "")
		}
		setBody(out, buf)
	}
	return nil
}

func tokenHeader(rule *policy.Rule, tok string) (name, value string) {
	return orString(rule.Inject.Header, "Authorization"), format(rule.Inject.Format, "Bearer {secret}", tok)
}

// token returns a current access token for cred, fetching one if needed.
func (c *tokenCache) token(ctx context.Context, cred *vault.Credential) (string, error) {
	set, err := OAuth2SettingsOf(cred)
	if err != nil {
		return "", newError(http.StatusBadGateway, CodeCredentialInvalid, err.Error(), "store it again with `airlock vault set-oauth2`")
	}
	key := cacheKey(cred.Path, set)
	now := c.now()
	c.mu.Lock()
	e := c.entries[key]
	switch {
	case e != nil && e.token != "" && now.Before(e.refreshAt):
		tok := e.token
		c.mu.Unlock()
		return tok, nil
	case e != nil && e.token != "" && now.Before(e.expiry):
		tok := e.token
		if !now.Before(e.retryAt) { // refresh ahead in the background; this request uses the current token
			c.group.DoChan(key, func() (any, error) { return c.fetch(key, cred, set) })
		}
		c.mu.Unlock()
		return tok, nil
	case e != nil && now.Before(e.retryAt):
		err := e.lastErr
		c.mu.Unlock()
		return "", err
	}
	c.mu.Unlock()
	ch := c.group.DoChan(key, func() (any, error) { return c.fetch(key, cred, set) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", newError(http.StatusGatewayTimeout, CodeUpstreamError, "gave up waiting for an access token for credential "+cred.Path, "")
	}
}

// fetch runs one token exchange (under the single flight) and records the
// result.
func (c *tokenCache) fetch(key string, cred *vault.Credential, set OAuth2Settings) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenFetchTimeout)
	defer cancel()
	start := c.now()
	var tr *tokenResponse
	var err error
	if set.Grant == GrantRefreshToken {
		tr, err = c.refreshGrant(ctx, cred, set)
	} else {
		var sec OAuth2Secret
		if sec, err = OAuth2SecretOf(cred); err == nil {
			tr, err = c.exchange(ctx, cred.Path, set, sec, nil)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		e = &tokenEntry{path: cred.Path}
		c.entries[key] = e
	}
	if err != nil {
		e.failures++
		e.retryAt = c.now().Add(backoff(e.failures))
		e.lastErr = asTokenError(cred.Path, err)
		c.metrics.OAuth2TokenRequests.WithLabelValues(cred.Path, tokenResult(err)).Inc()
		c.log.Warn("token request failed", zap.String("credential", cred.Path), zap.Int("failures", e.failures), zap.String("error", e.lastErr.Error()))
		return "", e.lastErr
	}
	e.token, e.expiry = tr.AccessToken, start.Add(tr.lifetime)
	e.refreshAt = e.expiry.Add(-refreshMargin(tr.lifetime))
	e.failures, e.retryAt, e.lastErr = 0, time.Time{}, nil
	c.metrics.OAuth2TokenRequests.WithLabelValues(cred.Path, "ok").Inc()
	c.metrics.OAuth2TokenExpiry.WithLabelValues(cred.Path).Set(float64(e.expiry.Unix()))
	c.log.Info("token issued", zap.String("credential", cred.Path), zap.Duration("expires_in", tr.lifetime))
	return tr.AccessToken, nil
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

// invalidate drops cred's token if it is the one in header value used (the
// upstream answered 401 to it); a token fetched since is kept.
func (c *tokenCache) invalidate(rule *policy.Rule, cred *vault.Credential, used string) {
	set, err := OAuth2SettingsOf(cred)
	if err != nil {
		return
	}
	key := cacheKey(cred.Path, set)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && e.token != "" {
		if _, v := tokenHeader(rule, e.token); v == used {
			e.token, e.expiry, e.refreshAt = "", time.Time{}, time.Time{}
		}
	}
}

// live lists the access tokens currently cached for the credential path.
func (c *tokenCache) live(path string) []string {
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

// asTokenError makes sure what reaches the agent is an *Error.
func asTokenError(path string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, ErrBadTokenCredential) {
		return newError(http.StatusBadGateway, CodeCredentialInvalid, err.Error(), "store it again with `airlock vault set-oauth2`")
	}
	return newError(http.StatusBadGateway, CodeUpstreamError, "credential "+path+": token request failed",
		"check the token endpoint; airlock retries with backoff")
}
