package oauth2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/vault"
)

const (
	tokenBodyLimit   = 1 << 20         // bytes of a token response read
	maxTokenLen      = 16 << 10        // longest access or refresh token accepted
	defaultLifetime  = 5 * time.Minute // when the endpoint omits expires_in
	maxTokenLifetime = 24 * time.Hour * 366
)

// Token endpoint failures (wrapped; fetch turns them into *errcode.Error).
var (
	errTokenMalformed   = errors.New("token endpoint answered without a usable access token")
	errTokenUnreachable = errors.New("token endpoint unreachable")
	errNoRotation       = errors.New("refresh token not rotated")
)

// Message fragments tokenResult recognises.
const (
	msgMalformed = " answered without a usable access token"
	msgRefused   = " refused the token request"
)

// tokenResponse is the part of an RFC 6749 section 5.1 answer airlock uses.
type tokenResponse struct {
	AccessToken  string      `json:"access_token"`
	TokenType    string      `json:"token_type"`
	ExpiresIn    json.Number `json:"expires_in"`
	RefreshToken string      `json:"refresh_token"`

	lifetime time.Duration
}

// tokenErrorBody is an RFC 6749 section 5.2 error answer.
type tokenErrorBody struct {
	Error string `json:"error"`
}

// exchange posts one token request: the grant's form plus the client
// authentication, through the guarded transport, no redirects followed.
func (c *Cache) exchange(ctx context.Context, path string, set vault.OAuth2Settings, sec vault.OAuth2Secret, form url.Values) (*tokenResponse, error) {
	if form == nil {
		form = url.Values{"grant_type": {vault.GrantClientCredentials}}
	}
	if len(set.Scopes) > 0 {
		form.Set("scope", strings.Join(set.Scopes, " "))
	}
	if set.Audience != "" {
		form.Set("audience", set.Audience)
	}
	basic := set.AuthMethod == vault.AuthMethodBasic && sec.ClientSecret != ""
	if !basic {
		form.Set("client_id", set.ClientID)
		if sec.ClientSecret != "" {
			form.Set("client_secret", sec.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, set.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("credential %s: token url: %w", path, vault.ErrBadTokenCredential)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "airlock")
	if basic {
		pair := url.QueryEscape(set.ClientID) + ":" + url.QueryEscape(sec.ClientSecret)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pair)))
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		var e *errcode.Error
		if errors.As(err, &e) {
			return nil, e // the dial guard refused the token endpoint
		}
		return nil, errcode.New(http.StatusBadGateway, errcode.UpstreamError,
			"credential "+path+": cannot reach the token endpoint "+req.URL.Host,
			"check that the token endpoint is up and reachable from airlock; airlock retries with backoff")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, tokenBodyLimit))
	if err != nil {
		return nil, fmt.Errorf("credential %s: read token response: %w", path, errTokenUnreachable)
	}
	tr, err := parseTokenResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, tokenEndpointError(path, req.URL.Host, err)
	}
	return tr, nil
}

// endpointError is an error answer of the token endpoint.
type endpointError struct {
	status int
	code   string // the answer's "error" field, sanitised
}

func (e *endpointError) Error() string {
	return fmt.Sprintf("token endpoint answered %d %s", e.status, e.code)
}

// parseTokenResponse validates a token endpoint answer. Errors never quote
// the body (it may hold a token).
func parseTokenResponse(status int, contentType string, body []byte) (*tokenResponse, error) {
	if status != http.StatusOK {
		var eb tokenErrorBody
		_ = json.Unmarshal(body, &eb)
		return nil, &endpointError{status: status, code: sanitizeCode(eb.Error)}
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return nil, fmt.Errorf("content type %q: %w", mt, errTokenMalformed)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("not a JSON token document: %w", errTokenMalformed)
	}
	switch {
	case tr.AccessToken == "" || len(tr.AccessToken) > maxTokenLen || !printableASCII(tr.AccessToken):
		return nil, fmt.Errorf("access_token missing or not a printable token: %w", errTokenMalformed)
	case tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "bearer"):
		return nil, fmt.Errorf("token_type %q is not bearer: %w", sanitizeCode(tr.TokenType), errTokenMalformed)
	case len(tr.RefreshToken) > maxTokenLen || !printableASCII(tr.RefreshToken):
		return nil, fmt.Errorf("refresh_token is not a printable token: %w", errTokenMalformed)
	}
	tr.lifetime = defaultLifetime
	if tr.ExpiresIn != "" {
		n, err := strconv.ParseFloat(string(tr.ExpiresIn), 64)
		if err != nil || n <= 0 || time.Duration(n*float64(time.Second)) > maxTokenLifetime {
			return nil, fmt.Errorf("expires_in is not a positive number of seconds: %w", errTokenMalformed)
		}
		tr.lifetime = time.Duration(n * float64(time.Second))
	}
	return &tr, nil
}

// tokenEndpointError maps a parse failure to the agent's error: a rejected
// client or grant is CREDENTIAL_INVALID, anything else UPSTREAM_ERROR; the
// endpoint's error code travels in Error.Upstream.
func tokenEndpointError(path, host string, err error) *errcode.Error {
	var ee *endpointError
	if !errors.As(err, &ee) {
		return errcode.New(http.StatusBadGateway, errcode.UpstreamError,
			"credential "+path+": the token endpoint "+host+msgMalformed,
			"check the credential's --token-url; airlock retries with backoff")
	}
	code := errcode.UpstreamError
	if ee.status == http.StatusBadRequest || ee.status == http.StatusUnauthorized || ee.status == http.StatusForbidden {
		code = errcode.CredentialInvalid
	}
	e := errcode.New(http.StatusBadGateway, code,
		"credential "+path+": the token endpoint "+host+msgRefused+" ("+strconv.Itoa(ee.status)+")",
		"check the client id, client secret, scopes and grant with `airlock vault set-oauth2`")
	e.Upstream = ee.code
	return e
}

// sanitizeCode keeps an RFC 6749 error code readable and harmless: at most
// 64 characters of [A-Za-z0-9_.-].
func sanitizeCode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 64; i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// tokenResult is the metric label of a failed token request.
func tokenResult(err error) string {
	var e *errcode.Error
	switch {
	case errors.As(err, &e) && e.Code == errcode.CredentialInvalid:
		return "rejected"
	case errors.As(err, &e) && strings.Contains(e.Message, msgRefused):
		return "error"
	case errors.As(err, &e) && strings.Contains(e.Message, msgMalformed):
		return "malformed"
	}
	return "unreachable"
}

// refreshGrant runs the refresh_token grant inside a vault update: under the
// vault file lock it reads the newest refresh token, exchanges it, and saves
// a rotated one before the access token is used. A serving airlock and the
// CLI (or a second airlock on the same vault) therefore never use a refresh
// token another has already rotated. A rotated token that could not be saved
// is kept in memory and used (and saved) by the next attempt.
func (c *Cache) refreshGrant(ctx context.Context, cred *vault.Credential, set vault.OAuth2Settings) (*tokenResponse, error) {
	v := c.vault()
	if v == nil {
		return nil, errcode.New(http.StatusServiceUnavailable, errcode.VaultLocked, "the vault is sealed", "restart `airlock serve` with the passphrase or key file to unseal it")
	}
	var tr *tokenResponse
	err := v.Update(func(d *vault.Data) error {
		cur, err := d.Credential(cred.Path)
		if err != nil {
			return err
		}
		sec, err := vault.OAuth2SecretOf(cur)
		if err != nil {
			return err
		}
		stored := sec.RefreshToken
		if p := c.pendingFor(cred.Path); p != "" {
			sec.RefreshToken = p
		}
		form := url.Values{"grant_type": {vault.GrantRefreshToken}, "refresh_token": {sec.RefreshToken}}
		if tr, err = c.exchange(ctx, cred.Path, set, sec, form); err != nil {
			return err
		}
		if tr.RefreshToken != "" {
			sec.RefreshToken = tr.RefreshToken
		}
		if sec.RefreshToken == stored {
			return errNoRotation // nothing to save
		}
		c.setPending(cred.Path, sec.RefreshToken) // cleared once saved
		return storeSecret(d, cur, sec)
	})
	switch {
	case errors.Is(err, errNoRotation):
		c.setPending(cred.Path, "")
		return tr, nil
	case err != nil && tr != nil:
		return nil, errcode.New(http.StatusBadGateway, errcode.CredentialInvalid,
			"credential "+cred.Path+": the rotated refresh token could not be saved to the vault",
			"check that the vault file is writable; airlock keeps the new token in memory and retries")
	case err != nil:
		return nil, err
	}
	c.setPending(cred.Path, "")
	return tr, nil
}

func (c *Cache) pendingFor(path string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[path]
}

func (c *Cache) setPending(path, tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok == "" {
		delete(c.pending, path)
	} else {
		c.pending[path] = tok
	}
}

// storeSecret replaces the secret document of cur in d (a copy owned by
// the update).
func storeSecret(d *vault.Data, cur *vault.Credential, sec vault.OAuth2Secret) error {
	val, err := json.Marshal(sec)
	if err != nil {
		return fmt.Errorf("encode oauth2 secret of %s: %w", cur.Path, err)
	}
	nc := *cur
	nc.Value = vault.NewSecret(val)
	nc.UpdatedAt = time.Now().UTC()
	d.Credentials[cur.Path] = &nc
	return nil
}
