package source

// The pipeline's side of reference credentials: a [Resolver] (the
// [Registry]) kept loaded with the vault's source definitions ([Refs]),
// and the refusal an agent gets when a source fails ([Refusal]).

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/vault"
)

// Resolver resolves reference credentials from external credential
// sources: *[Registry]. Load makes it match the vault's source
// definitions; ResolveCredential returns a stored credential unchanged and
// a reference as a copy holding the fetched value (errors classified by
// source.Code).
type Resolver interface {
	Load(d *vault.Data) error
	ResolveCredential(ctx context.Context, c *vault.Credential, now time.Time) (*vault.Credential, error)
}

// Refs is the pipeline's [Resolver], kept in step with the vault: it is
// loaded again whenever the vault snapshot it last loaded is replaced (a
// reload), before the next credential is resolved. Set R (nil: reference
// credentials are refused) and Log before use.
type Refs struct {
	R      Resolver
	Log    *zap.Logger
	mu     sync.Mutex // serialises R.Load
	loaded atomic.Pointer[vault.Data]
}

// sync loads d into the resolver unless it is the snapshot loaded last.
func (rs *Refs) sync(d *vault.Data, log *zap.Logger) {
	if d == nil || rs.loaded.Load() == d {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.loaded.Load() == d {
		return
	}
	if err := rs.R.Load(d); err != nil { // broken definitions answer unavailable; the rest serve
		log.Error("credential sources loaded with errors", zap.String(audit.FieldError, err.Error()))
	}
	rs.loaded.Store(d)
}

// Resolve turns a reference credential into one holding its value, with d
// the vault snapshot in force; any other credential is returned as is.
func (rs *Refs) Resolve(ctx context.Context, d *vault.Data, cred *vault.Credential) (*vault.Credential, *errcode.Error) {
	if rs.R == nil {
		if cred.Kind == vault.KindRef { // never inject an empty value
			return nil, errcode.New(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
				"credential "+cred.Path+" names a credential source this server does not run",
				"run `airlock serve`, which loads the vault's credential sources")
		}
		return cred, nil
	}
	rs.sync(d, rs.Log)
	out, err := rs.R.ResolveCredential(ctx, cred, time.Now())
	if err != nil {
		e := Refusal(cred.Path, err)
		rs.Log.Warn("credential source failed", zap.String("credential", cred.Path), zap.String("code", e.Code),
			zap.String("error", err.Error()))
		return nil, e
	}
	if out.Kind == vault.KindRef || out.Value.Len() == 0 && cred.Kind == vault.KindRef {
		return nil, errcode.New(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
			"the credential source of "+cred.Path+" returned no value", "check the source's entry for this key")
	}
	return out, nil
}

// Refusal maps a credential source error onto the agent's refusal. It
// names the source and the credential, never the cause (which is logged).
func Refusal(path string, err error) *errcode.Error {
	name := "its source"
	var se *Error
	if errors.As(err, &se) && se.Source != "" {
		name = "source " + se.Source
	}
	switch Code(err) {
	case errcode.CredentialNotFound:
		return errcode.New(http.StatusBadGateway, errcode.CredentialNotFound, name+" does not hold credential "+path,
			"store the key in the source, or point the reference at the right key with `airlock vault set-ref`")
	case errcode.CredentialExpired:
		return errcode.New(http.StatusForbidden, errcode.CredentialExpired, "credential "+path+" from "+name+" has expired",
			"renew the secret in its source")
	case errcode.CredentialInvalid:
		return errcode.New(http.StatusBadGateway, errcode.CredentialInvalid, name+" refused airlock's credentials for "+path,
			"check the source's auth settings with `airlock doctor`")
	}
	e := errcode.New(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
		name+" did not answer for credential "+path,
		"check that the source is up (`airlock doctor`); airlock fails closed after the source's stale window")
	if se != nil && se.RetryAfter > 0 {
		e.RetryAfter = int(se.RetryAfter.Seconds() + 0.999)
	}
	return e
}
