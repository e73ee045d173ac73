package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock/airlock/vault"
)

// KV auth methods.
const (
	KVAuthToken   = "token"
	KVAuthAppRole = "approle"
)

// KVConfig is one HashiCorp Vault / OpenBao KV version 2 mount. Plain HTTP
// against the documented API: github.com/hashicorp/vault/api pulls in
// dozens of modules for the four calls used here.
type KVConfig struct {
	Address      string // https://vault.example:8200
	Mount        string // KV v2 mount, default "secret"
	Namespace    string // X-Vault-Namespace (Enterprise / OpenBao namespaces), optional
	Auth         string // KVAuthToken or KVAuthAppRole
	Token        vault.Secret
	RoleID       string
	SecretID     vault.Secret
	AppRoleMount string // default "approle"
	CAPEM        []byte
	Timeout      time.Duration
	Now          func() time.Time
}

// KV is a [Source] and [Checker] reading KV v2 secrets: key is the path in
// the mount, KEY#FIELD picks data.data[FIELD], KEY#FIELD@N pins version N.
type KV struct {
	cfg  KVConfig
	addr string
	hc   *http.Client

	// mu serializes logins and renewals and guards the token state.
	mu        sync.Mutex
	tok       string
	renewAt   time.Time // zero: never renew (no TTL)
	renewable bool
}

// NewKV checks cfg and returns the source.
func NewKV(cfg KVConfig) (*KV, error) {
	u, err := url.Parse(cfg.Address)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("vault-kv: address %q: want https://host:port", cfg.Address)
	}
	if cfg.Mount == "" {
		cfg.Mount = "secret"
	}
	if cfg.AppRoleMount == "" {
		cfg.AppRoleMount = "approle"
	}
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	switch {
	case cfg.Auth == KVAuthToken && cfg.Token.IsZero():
		return nil, errors.New("vault-kv: token auth needs a token")
	case cfg.Auth == KVAuthAppRole && (cfg.RoleID == "" || cfg.SecretID.IsZero()):
		return nil, errors.New("vault-kv: approle auth needs a role ID and a secret ID")
	case cfg.Auth != KVAuthToken && cfg.Auth != KVAuthAppRole:
		return nil, fmt.Errorf("vault-kv: auth %q: want token or approle", cfg.Auth)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	k := &KV{cfg: cfg, addr: strings.TrimRight(u.String(), "/")}
	if k.hc, err = newHTTPClient(cfg.CAPEM, cfg.Timeout); err != nil {
		return nil, fmt.Errorf("vault-kv: %w", err)
	}
	return k, nil
}

// call sends one request and returns a 2xx body.
func (k *KV) call(ctx context.Context, method, op, path, tok string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.addr+path, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %v: %w", op, err, ErrUnavailable)
	}
	if tok != "" {
		req.Header.Set("X-Vault-Token", tok)
	}
	if k.cfg.Namespace != "" {
		req.Header.Set("X-Vault-Namespace", k.cfg.Namespace)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, 0, transportError(op, err)
	}
	b, err := readBody(resp)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode == http.StatusBadRequest && strings.HasPrefix(path, "/v1/auth/") {
			return nil, resp.StatusCode, fmt.Errorf("%s: 400 (login refused): %w", op, ErrAuth)
		}
		return nil, resp.StatusCode, statusError(op, resp)
	}
	return b, resp.StatusCode, nil
}

// token returns a usable token: AppRole login when needed, renewal of a
// renewable token two thirds into its TTL, re-login when that fails.
func (k *KV) token(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.cfg.Now()
	if k.tok != "" && (k.renewAt.IsZero() || now.Before(k.renewAt)) {
		return k.tok, nil
	}
	if k.tok != "" && k.renewable {
		if err := k.renewLocked(ctx); err == nil {
			return k.tok, nil
		} else if k.cfg.Auth == KVAuthToken {
			return "", err
		}
	}
	if k.cfg.Auth == KVAuthToken {
		if k.tok == "" {
			k.tok = string(k.cfg.Token.Bytes())
			k.lookupLocked(ctx)
		}
		return k.tok, nil // not renewable: used until Vault refuses it
	}
	if err := k.loginLocked(ctx); err != nil {
		return "", err
	}
	return k.tok, nil
}

func (k *KV) setLease(tok string, ttl time.Duration, renewable bool) {
	k.tok, k.renewable, k.renewAt = tok, renewable, time.Time{}
	if ttl > 0 {
		k.renewAt = k.cfg.Now().Add(ttl * 2 / 3)
	}
}

func (k *KV) loginLocked(ctx context.Context) error {
	b, _, err := k.call(ctx, http.MethodPost, "AppRole login", "/v1/auth/"+k.cfg.AppRoleMount+"/login", "",
		map[string]string{"role_id": k.cfg.RoleID, "secret_id": string(k.cfg.SecretID.Bytes())})
	if err != nil {
		return err
	}
	a, err := parseKVAuth(b)
	if err != nil {
		return fmt.Errorf("AppRole login: %v: %w", err, ErrUnavailable)
	}
	k.setLease(a.token, a.ttl, a.renewable)
	return nil
}

func (k *KV) renewLocked(ctx context.Context) error {
	b, _, err := k.call(ctx, http.MethodPost, "token renew-self", "/v1/auth/token/renew-self", k.tok, map[string]string{})
	if err != nil {
		return err
	}
	a, err := parseKVAuth(b)
	if err != nil {
		return fmt.Errorf("token renew-self: %v: %w", err, ErrUnavailable)
	}
	if a.token == "" {
		a.token = k.tok
	}
	k.setLease(a.token, a.ttl, a.renewable)
	return nil
}

// lookupLocked learns a static token's TTL and renewability; a token
// without lookup-self permission is simply used as is.
func (k *KV) lookupLocked(ctx context.Context) {
	b, _, err := k.call(ctx, http.MethodGet, "token lookup-self", "/v1/auth/token/lookup-self", k.tok, nil)
	if err != nil {
		return
	}
	if ttl, renewable, err := parseKVLookup(b); err == nil {
		k.setLease(k.tok, ttl, renewable)
	}
}

func (k *KV) dropToken(tok string) {
	k.mu.Lock()
	if k.tok == tok && k.cfg.Auth == KVAuthAppRole {
		k.tok = ""
	}
	k.mu.Unlock()
}

// Fetch reads KEY[#FIELD[@VERSION]] from the mount.
func (k *KV) Fetch(ctx context.Context, skey string) (Value, error) {
	key, field, version, err := ParseKey(skey)
	if err != nil {
		return Value{}, fmt.Errorf("%v: %w", err, ErrNotFound)
	}
	path := "/v1/" + escapeKey(k.cfg.Mount) + "/data/" + escapeKey(strings.Trim(key, "/"))
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	for attempt := 0; ; attempt++ {
		tok, err := k.token(ctx)
		if err != nil {
			return Value{}, err
		}
		b, code, err := k.call(ctx, http.MethodGet, "GET secret", path, tok, nil)
		if code == http.StatusForbidden && k.cfg.Auth == KVAuthAppRole && attempt == 0 {
			k.dropToken(tok) // expired or revoked AppRole token: log in again once
			continue
		}
		if err != nil {
			return Value{}, err
		}
		v, err := parseKVSecret(b, field)
		if err != nil {
			return Value{}, fmt.Errorf("GET secret: %w", withClass(err, ErrUnavailable))
		}
		return Value{Secret: vault.NewSecret(v), Kind: vault.KindStatic}, nil
	}
}

// Check proves the auth works (login or lookup-self).
func (k *KV) Check(ctx context.Context) error {
	tok, err := k.token(ctx)
	if err != nil {
		return err
	}
	_, _, err = k.call(ctx, http.MethodGet, "token lookup-self", "/v1/auth/token/lookup-self", tok, nil)
	return err
}

// KV wire formats (untrusted bytes; fuzzed).

type kvAuth struct {
	token     string
	ttl       time.Duration
	renewable bool
}

func parseKVAuth(b []byte) (kvAuth, error) {
	var r struct {
		Auth *struct {
			ClientToken   string `json:"client_token"`
			LeaseDuration int64  `json:"lease_duration"`
			Renewable     bool   `json:"renewable"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Auth == nil {
		return kvAuth{}, errors.New("response has no auth object")
	}
	if r.Auth.LeaseDuration < 0 || r.Auth.LeaseDuration > 10*365*24*3600 {
		return kvAuth{}, errors.New("lease_duration out of range")
	}
	return kvAuth{token: r.Auth.ClientToken, ttl: time.Duration(r.Auth.LeaseDuration) * time.Second, renewable: r.Auth.Renewable}, nil
}

func parseKVLookup(b []byte) (time.Duration, bool, error) {
	var r struct {
		Data *struct {
			TTL       int64 `json:"ttl"`
			Renewable bool  `json:"renewable"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Data == nil || r.Data.TTL < 0 || r.Data.TTL > 10*365*24*3600 {
		return 0, false, errors.New("lookup-self response malformed")
	}
	return time.Duration(r.Data.TTL) * time.Second, r.Data.Renewable, nil
}

// parseKVSecret returns data.data[field]; with no field, the only field.
func parseKVSecret(b []byte, field string) ([]byte, error) {
	var r struct {
		Data *struct {
			Data     map[string]json.RawMessage `json:"data"`
			Metadata *struct {
				DeletionTime string `json:"deletion_time"`
				Destroyed    bool   `json:"destroyed"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Data == nil {
		return nil, errors.New("response is not a KV v2 secret (is the mount KV version 2?)")
	}
	if md := r.Data.Metadata; md != nil && (md.Destroyed || md.DeletionTime != "") {
		return nil, fmt.Errorf("this version is deleted or destroyed: %w", ErrNotFound)
	}
	if r.Data.Data == nil {
		return nil, fmt.Errorf("secret has no data: %w", ErrNotFound)
	}
	if field == "" {
		if len(r.Data.Data) != 1 {
			return nil, fmt.Errorf("secret has %d fields; name one with --field: %w", len(r.Data.Data), ErrNotFound)
		}
		for f := range r.Data.Data {
			field = f
		}
	}
	raw, ok := r.Data.Data[field]
	if !ok {
		return nil, fmt.Errorf("secret has no field %q: %w", field, ErrNotFound)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s), nil
	}
	return bytes.Clone(raw), nil
}
