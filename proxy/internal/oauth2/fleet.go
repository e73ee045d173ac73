package oauth2

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/state"
	"github.com/airlock/airlock/vault"
)

// Fleet mode: when the state store is shared by several replicas
// (state.Leaser, `serve --state redis://`), a token is taken from the
// fleet when this process's copy is due, and exactly one replica (the
// lease holder) calls the token endpoint. The newest refresh token lives
// in the shared store (sealed there by the store), so a rotating refresh
// token is used once fleet-wide and survives restarts of every replica;
// the vault file's copy is updated too where this replica can write it.
//
// Shared store unreachable: client_credentials tokens are fetched locally
// (no refresh token to spoil); a refresh_token grant fails with
// CREDENTIAL_SOURCE_UNAVAILABLE rather than risk spending a rotating
// refresh token another replica may also spend (providers revoke the
// whole token family on reuse).

// fleetWait bounds one fleet token call: waiting for another replica's
// refresh (its lease lasts at most 30 s) plus our own exchange.
const fleetWait = 30*time.Second + tokenFetchTimeout

// get fetches key's token (under the single flight): from the fleet when
// the store is shared, else from the token endpoint.
func (c *Cache) get(key string, cred *vault.Credential, set vault.OAuth2Settings) (string, error) {
	if c.leaser == nil {
		if tok, ok := c.fresh(key); ok {
			return tok, nil
		}
		return c.fetch(key, cred, set)
	}
	return c.fleetFetch(key, cred, set)
}

// fleetFetch takes key's token from the fleet, refreshing it if this
// replica wins the lease.
func (c *Cache) fleetFetch(key string, cred *vault.Credential, set vault.OAuth2Settings) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), fleetWait)
	defer cancel()
	var minValid time.Duration
	c.mu.Lock()
	if e := c.entries[key]; e != nil && e.token != "" {
		minValid = e.expiry.Sub(e.refreshAt) // due: ask for one outliving our margin
	}
	c.mu.Unlock()
	var refreshed atomic.Bool // set in the store's goroutine
	t, err := c.leaser.Lease(ctx, key, minValid, func(ctx context.Context, cur state.LeasedToken) (state.LeasedToken, error) {
		refreshed.Store(true)
		return c.fleetRefresh(ctx, cred, set, cur)
	})
	if errors.Is(err, state.ErrUnavailable) {
		if set.Grant != vault.GrantRefreshToken {
			c.log.Warn("fleet token state unavailable, fetching locally", zap.String(audit.FieldCredential, cred.Path), zap.String(audit.FieldError, err.Error()))
			return c.fetch(key, cred, set)
		}
		c.log.Error("fleet token state unavailable, rotating refresh token not used", zap.String(audit.FieldCredential, cred.Path), zap.String(audit.FieldError, err.Error()))
		err = errcode.New(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
			"credential "+cred.Path+": the fleet's shared token state is unreachable and a refresh here could spend a refresh token another replica also holds",
			"restore the --state redis (see /readyz detail); airlock retries")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entryLocked(key, cred.Path)
	if err != nil {
		if refreshed.Load() {
			c.metrics.Requests.WithLabelValues(cred.Path, tokenResult(err)).Inc()
		}
		return "", c.failLocked(e, err)
	}
	now := c.now()
	e.token, e.expiry = t.Access, t.Expiry
	e.refreshAt = t.Expiry.Add(-refreshMargin(max(t.Expiry.Sub(now), 0)))
	e.failures, e.retryAt, e.lastErr = 0, time.Time{}, nil
	c.metrics.Expiry.WithLabelValues(cred.Path).Set(float64(e.expiry.Unix()))
	if refreshed.Load() {
		c.metrics.Requests.WithLabelValues(cred.Path, "ok").Inc()
		c.log.Info("token issued", zap.String(audit.FieldCredential, cred.Path), zap.Duration(fieldExpiresIn, t.Expiry.Sub(now)), zap.Bool("fleet", true))
	} else if ce := c.log.Check(zap.DebugLevel, "token from the fleet"); ce != nil {
		ce.Write(zap.String(audit.FieldCredential, cred.Path))
	}
	return t.Access, nil
}

// fleetRefresh runs one token exchange for the fleet (this replica holds
// the lease). The fleet's refresh token is the newest there is; the
// vault's is used only when the fleet has none yet.
func (c *Cache) fleetRefresh(ctx context.Context, cred *vault.Credential, set vault.OAuth2Settings, cur state.LeasedToken) (state.LeasedToken, error) {
	start := c.now()
	if set.Grant != vault.GrantRefreshToken {
		sec, err := vault.OAuth2SecretOf(cred)
		if err != nil {
			return state.LeasedToken{}, err
		}
		tr, err := c.exchange(ctx, cred.Path, set, sec, nil)
		if err != nil {
			return state.LeasedToken{}, err
		}
		return state.LeasedToken{Access: tr.AccessToken, Expiry: start.Add(tr.lifetime)}, nil
	}
	v := c.vault()
	if v == nil {
		return state.LeasedToken{}, errcode.New(http.StatusServiceUnavailable, errcode.VaultLocked, "the vault is sealed", "restart `airlock serve` with the passphrase or key file to unseal it")
	}
	vc, err := v.Snapshot().Credential(cred.Path)
	if err != nil {
		return state.LeasedToken{}, err
	}
	sec, err := vault.OAuth2SecretOf(vc)
	if err != nil {
		return state.LeasedToken{}, err
	}
	inVault := sec.RefreshToken
	if cur.Refresh != "" {
		sec.RefreshToken = cur.Refresh
	}
	used := sec.RefreshToken
	form := url.Values{"grant_type": {vault.GrantRefreshToken}, "refresh_token": {used}}
	tr, err := c.exchange(ctx, cred.Path, set, sec, form)
	if err != nil {
		return state.LeasedToken{}, err
	}
	next := state.LeasedToken{Access: tr.AccessToken, Refresh: tr.RefreshToken, Expiry: start.Add(tr.lifetime)}
	if next.Refresh == "" {
		next.Refresh = used
	}
	if next.Refresh != inVault {
		c.saveRefresh(v, cred.Path, next.Refresh)
	}
	return next, nil
}

// saveRefresh writes the fleet's newest refresh token into this replica's
// vault file too, where it can (a read-only Secret mount cannot: the
// shared store keeps it).
func (c *Cache) saveRefresh(v *vault.Vault, path, rt string) {
	err := v.Update(func(d *vault.Data) error {
		cur, err := d.Credential(path)
		if err != nil {
			return err
		}
		sec, err := vault.OAuth2SecretOf(cur)
		if err != nil {
			return err
		}
		sec.RefreshToken = rt
		return storeSecret(d, cur, sec)
	})
	if err != nil {
		c.log.Warn("rotated refresh token kept in the fleet state only: the vault file was not updated",
			zap.String("credential", path), zap.String(audit.FieldError, err.Error()))
	}
}
