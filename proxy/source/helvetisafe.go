package source

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/vault"
)

// HelvetiSafe auth and key modes.
const (
	HSAuthOAuth2 = "oauth2" // client credentials at POST {base}/oauth/token
	HSAuthToken  = "token"  // portal API token as Bearer
	HSKeyPEM     = "pem"    // RSA private key PEM stored in the vault
	HSKeyPass    = "password"
)

// HelvetiSafeConfig is one HelvetiSafe source.
type HelvetiSafeConfig struct {
	BaseURL      string
	Auth         string // HSAuthOAuth2 or HSAuthToken
	ClientID     string
	ClientSecret vault.Secret
	Scopes       []string
	APIToken     vault.Secret
	KeyMode      string       // HSKeyPEM or HSKeyPass
	PrivateKey   vault.Secret // PEM (or DER) RSA key, HSKeyPEM
	Password     vault.Secret // account password, HSKeyPass
	CAPEM        []byte       // optional private CA
	Timeout      time.Duration
	Assume       HelvetiSafeAssumptions
	Now          func() time.Time
}

// HelvetiSafe is a [Source] and [Checker] for a HelvetiSafe organisation.
type HelvetiSafe struct {
	cfg  HelvetiSafeConfig
	base *url.URL
	hc   *http.Client

	// tokMu serializes token requests and guards tok and tokUntil.
	tokMu    sync.Mutex
	tok      string
	tokUntil time.Time // when to fetch a new one (expiry - RefreshBefore)

	// keyMu serializes org-key requests and guards priv and orgKey.
	keyMu  sync.Mutex
	priv   *rsa.PrivateKey
	orgKey []byte
}

// NewHelvetiSafe checks cfg and returns the source. A PEM key is parsed
// now, so a bad key is refused at setup.
func NewHelvetiSafe(cfg HelvetiSafeConfig) (*HelvetiSafe, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("helvetisafe: base URL %q: want https://host[/prefix]", cfg.BaseURL)
	}
	switch {
	case cfg.Auth == HSAuthOAuth2 && (cfg.ClientID == "" || cfg.ClientSecret.IsZero()):
		return nil, errors.New("helvetisafe: oauth2 auth needs a client ID and a client secret")
	case cfg.Auth == HSAuthToken && cfg.APIToken.IsZero():
		return nil, errors.New("helvetisafe: token auth needs an API token")
	case cfg.Auth != HSAuthOAuth2 && cfg.Auth != HSAuthToken:
		return nil, fmt.Errorf("helvetisafe: auth %q: want oauth2 or token", cfg.Auth)
	}
	if cfg.Assume == (HelvetiSafeAssumptions{}) {
		cfg.Assume = DefaultHelvetiSafeAssumptions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	h := &HelvetiSafe{cfg: cfg, base: u}
	switch cfg.KeyMode {
	case HSKeyPEM:
		if h.priv, err = parseRSAKey(cfg.PrivateKey.Bytes()); err != nil {
			return nil, fmt.Errorf("helvetisafe: %w", err)
		}
	case HSKeyPass:
		if cfg.Password.IsZero() {
			return nil, errors.New("helvetisafe: password key mode needs the account password")
		}
	default:
		return nil, fmt.Errorf("helvetisafe: key mode %q: want pem or password", cfg.KeyMode)
	}
	if h.hc, err = newHTTPClient(cfg.CAPEM, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("helvetisafe: %w", err)
	}
	return h, nil
}

// endpoint joins the base URL (path prefix kept) and an escaped path.
func (h *HelvetiSafe) endpoint(path string) string {
	return strings.TrimRight(h.base.String(), "/") + path
}

// escapeKey path-escapes each segment of key, keeping its slashes.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// token returns a bearer token, fetching a new OAuth2 one RefreshBefore
// ahead of its expiry.
func (h *HelvetiSafe) token(ctx context.Context) (string, error) {
	if h.cfg.Auth == HSAuthToken {
		return string(h.cfg.APIToken.Bytes()), nil
	}
	h.tokMu.Lock()
	defer h.tokMu.Unlock()
	if h.tok != "" && h.cfg.Now().Before(h.tokUntil) {
		return h.tok, nil
	}
	t, err := h.requestToken(ctx)
	if err != nil {
		return "", err
	}
	ahead := h.cfg.Assume.RefreshBefore
	if ahead >= t.ExpiresIn {
		ahead = t.ExpiresIn / 2
	}
	h.tok, h.tokUntil = t.AccessToken, h.cfg.Now().Add(t.ExpiresIn-ahead)
	return h.tok, nil
}

func (h *HelvetiSafe) dropToken(tok string) {
	h.tokMu.Lock()
	if h.tok == tok {
		h.tok = ""
	}
	h.tokMu.Unlock()
}

func (h *HelvetiSafe) requestToken(ctx context.Context) (tokenResponse, error) {
	a := &h.cfg.Assume
	var body []byte
	ctype := "application/x-www-form-urlencoded"
	if a.TokenBody == "json" {
		m := map[string]string{"grant_type": "client_credentials", "client_id": h.cfg.ClientID,
			"client_secret": string(h.cfg.ClientSecret.Bytes())}
		if len(h.cfg.Scopes) > 0 {
			m[a.ScopeParam] = strings.Join(h.cfg.Scopes, " ")
		}
		body, _ = json.Marshal(m)
		ctype = "application/json"
	} else {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {h.cfg.ClientID},
			"client_secret": {string(h.cfg.ClientSecret.Bytes())}}
		if len(h.cfg.Scopes) > 0 {
			f.Set(a.ScopeParam, strings.Join(h.cfg.Scopes, " "))
		}
		body = []byte(f.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint(a.TokenPath), bytes.NewReader(body))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("token request: %v: %w", err, ErrUnavailable)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return tokenResponse{}, transportError("POST token", err)
	}
	b, err := readBody(resp)
	if err != nil {
		return tokenResponse{}, err
	}
	if resp.StatusCode == http.StatusBadRequest { // RFC 6749 §5.2 invalid_client / invalid_grant
		return tokenResponse{}, fmt.Errorf("POST token: 400 (client credentials refused): %w", ErrAuth)
	}
	if resp.StatusCode != http.StatusOK {
		return tokenResponse{}, statusError("POST token", resp)
	}
	t, err := parseTokenResponse(b)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("POST token: %v: %w", err, ErrUnavailable)
	}
	return t, nil
}

// get sends an authenticated GET and returns a 200 body. A 401 with an
// OAuth2 token drops the token and tries once more with a new one.
func (h *HelvetiSafe) get(ctx context.Context, op, path string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := h.token(ctx)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.endpoint(path), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", op, err, ErrUnavailable)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		resp, err := h.hc.Do(req)
		if err != nil {
			return nil, transportError(op, err)
		}
		b, err := readBody(resp)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && h.cfg.Auth == HSAuthOAuth2 && attempt == 0 {
			h.dropToken(tok)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, statusError(op, resp)
		}
		return b, nil
	}
}

// organisationKey returns the unwrapped org key, fetching it once (again
// after a decryption failure, in case it rotated).
func (h *HelvetiSafe) organisationKey(ctx context.Context, refresh bool) ([]byte, error) {
	h.keyMu.Lock()
	defer h.keyMu.Unlock()
	if h.orgKey != nil && !refresh {
		return h.orgKey, nil
	}
	a := &h.cfg.Assume
	b, err := h.get(ctx, "GET org-key", a.OrgKeyPath)
	if err != nil {
		return nil, err
	}
	r, err := parseOrgKeyResponse(b, a, h.cfg.KeyMode == HSKeyPass)
	if err != nil {
		return nil, fmt.Errorf("GET org-key: %v: %w", err, ErrUnavailable)
	}
	priv := h.priv
	if h.cfg.KeyMode == HSKeyPass {
		if priv, err = unlockPrivateKey(h.cfg.Password.Bytes(), r, a); err != nil {
			return nil, fmt.Errorf("%v: %w", err, ErrAuth)
		}
	}
	key, err := unwrapOrgKey(priv, r.Wrapped, a)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrAuth)
	}
	h.orgKey = key
	return key, nil
}

// Fetch returns the secret key (KEY or KEY#FIELD with value_format json).
func (h *HelvetiSafe) Fetch(ctx context.Context, skey string) (Value, error) {
	key, field, version, err := ParseKey(skey)
	if err != nil {
		return Value{}, fmt.Errorf("%v: %w", err, ErrNotFound)
	}
	if version != 0 {
		return Value{}, fmt.Errorf("helvetisafe has no secret versions (drop --version): %w", ErrNotFound)
	}
	a := &h.cfg.Assume
	orgKey, err := h.organisationKey(ctx, false)
	if err != nil {
		return Value{}, err
	}
	b, err := h.get(ctx, "GET secret", strings.ReplaceAll(a.SecretPath, "{key}", escapeKey(key)))
	if err != nil {
		return Value{}, err
	}
	r, err := parseSecretResponse(b, a)
	if err != nil {
		return Value{}, fmt.Errorf("GET secret: %v: %w", err, ErrUnavailable)
	}
	if a.ExpiresSource == "list" {
		if r.ExpiresAt, err = h.listExpiry(ctx, key); err != nil {
			return Value{}, err
		}
	}
	if !r.ExpiresAt.IsZero() && !h.cfg.Now().Before(r.ExpiresAt) {
		return Value{}, fmt.Errorf("expired at %s in helvetisafe: %w", r.ExpiresAt.UTC().Format(time.RFC3339), ErrExpired)
	}
	var aad []byte
	if a.AAD == "key" {
		aad = []byte(key)
	}
	pt, err := gcmOpen(orgKey, r.Nonce, r.Ciphertext, aad)
	if err != nil { // the org key may have rotated: fetch it once more
		if orgKey, err = h.organisationKey(ctx, true); err != nil {
			return Value{}, err
		}
		if pt, err = gcmOpen(orgKey, r.Nonce, r.Ciphertext, aad); err != nil {
			return Value{}, fmt.Errorf("secret does not decrypt with the organisation key (AES-256-GCM; check assume.nonce_layout and assume.aad): %w", ErrAuth)
		}
	}
	v, err := decodeValue(pt, a)
	if err == nil && field != "" {
		v, err = jsonField(v, field)
	}
	if err != nil {
		return Value{}, fmt.Errorf("secret: %w", withClass(err, ErrNotFound))
	}
	return Value{Secret: vault.NewSecret(v), Kind: vault.KindStatic, ExpiresAt: r.ExpiresAt}, nil
}

// listExpiry reads key's expires_at from the secret list metadata.
func (h *HelvetiSafe) listExpiry(ctx context.Context, key string) (time.Time, error) {
	b, err := h.get(ctx, "GET secret list", h.cfg.Assume.ListPath)
	if err != nil {
		return time.Time{}, err
	}
	exp, found, err := parseListExpiry(b, key, &h.cfg.Assume)
	if err != nil {
		return time.Time{}, fmt.Errorf("GET secret list: %v: %w", err, ErrUnavailable)
	}
	if !found {
		return time.Time{}, fmt.Errorf("GET secret list: key not listed: %w", ErrNotFound)
	}
	return exp, nil
}

// Check proves the auth and the key work: a token and the org key.
func (h *HelvetiSafe) Check(ctx context.Context) error {
	_, err := h.organisationKey(ctx, false)
	return err
}

// withClass wraps err with class unless it already has a sentinel.
func withClass(err, class error) error {
	for _, c := range []error{ErrNotFound, ErrExpired, ErrAuth, ErrUnavailable} {
		if errors.Is(err, c) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", err, class)
}
