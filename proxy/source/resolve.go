package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/source"
	"github.com/airlock/airlock/vault"
)

// Source is where the pipeline takes credentials from: given a credential
// path it returns the credential (value, kind, expiry, and the non-secret
// settings token kinds keep in Metadata). The vault is the one
// implementation here ([VaultSource]); external stores (package
// proxy/source) plug in through Config.Source.
//
// Errors: wrap [vault.ErrNotFound] for a path the source does not hold,
// [ErrSealed] while the source is locked (the vault sealed), anything else for a source that
// cannot answer (CREDENTIAL_SOURCE_UNAVAILABLE).
type Source interface {
	Fetch(ctx context.Context, path string) (*vault.Credential, error)
}

// VaultSource is the Source of a Server's vault: the snapshot current at
// each Fetch; sealed after Server.Seal.
type VaultSource struct{ s *Server }

// Fetch returns the credential at path from the vault.
func (v VaultSource) Fetch(_ context.Context, path string) (*vault.Credential, error) {
	vlt := v.s.Vault()
	if vlt == nil {
		return nil, ErrSealed
	}
	return vlt.Snapshot().Credential(path)
}

// sourceError maps a Source error onto the refusal the agent gets; rule is
// the rule asking ("" when the agent named the credential).
func sourceError(rule, path string, err error) *Error {
	switch {
	case errors.Is(err, ErrSealed):
		return vaultLocked()
	case errors.Is(err, vault.ErrNotFound):
		msg := "the vault does not hold " + path
		if rule != "" {
			msg = "rule " + rule + " names credential " + path + ", which the vault does not hold"
		}
		return newError(http.StatusBadGateway, CodeCredentialNotFound, msg, "store it with `airlock vault set "+path+"`")
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
		"the credential source of "+path+" did not answer",
		"check the credential source; airlock fails closed until it answers")
}

// Resolver resolves reference credentials from external credential
// sources: *source.Registry. Load makes it match the vault's source
// definitions; ResolveCredential returns a stored credential unchanged and
// a reference as a copy holding the fetched value (errors classified by
// source.Code).
type Resolver interface {
	Load(d *vault.Data) error
	ResolveCredential(ctx context.Context, c *vault.Credential, now time.Time) (*vault.Credential, error)
}

// refSources is the Server's Resolver, kept in step with the vault: it is
// loaded again whenever the vault snapshot it last loaded is replaced (a
// reload), before the next credential is resolved.
type refSources struct {
	r      Resolver
	mu     sync.Mutex
	loaded atomic.Pointer[vault.Data]
}

// sync loads d into the resolver unless it is the snapshot loaded last.
func (rs *refSources) sync(d *vault.Data, log *zap.Logger) {
	if d == nil || rs.loaded.Load() == d {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.loaded.Load() == d {
		return
	}
	if err := rs.r.Load(d); err != nil { // broken definitions answer unavailable; the rest serve
		log.Error("credential sources loaded with errors", fieldErr(err))
	}
	rs.loaded.Store(d)
}

// resolveRef turns a reference credential into one holding its value;
// any other credential is returned as is.
func (s *Server) resolveRef(ctx context.Context, rule string, cred *vault.Credential) (*vault.Credential, *Error) {
	if s.sources.r == nil {
		if cred.Kind == vault.KindRef { // never inject an empty value
			return nil, newError(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
				"credential "+cred.Path+" names a credential source this server does not run",
				"run `airlock serve`, which loads the vault's credential sources")
		}
		return cred, nil
	}
	s.sources.sync(s.Snapshot(), s.log)
	out, err := s.sources.r.ResolveCredential(ctx, cred, time.Now())
	if err != nil {
		e := refError(cred.Path, err)
		s.log.Warn("credential source failed", zap.String("credential", cred.Path), zap.String("code", e.Code),
			zap.String("error", err.Error()))
		return nil, e
	}
	if out.Kind == vault.KindRef || out.Value.Len() == 0 && cred.Kind == vault.KindRef {
		return nil, newError(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
			"the credential source of "+cred.Path+" returned no value", "check the source's entry for this key")
	}
	return out, nil
}

// refError maps a credential source error onto the agent's refusal. It
// names the source and the credential, never the cause (which is logged).
func refError(path string, err error) *Error {
	name := "its source"
	var se *source.Error
	if errors.As(err, &se) && se.Source != "" {
		name = "source " + se.Source
	}
	switch source.Code(err) {
	case errcode.CredentialNotFound:
		return newError(http.StatusBadGateway, CodeCredentialNotFound, name+" does not hold credential "+path,
			"store the key in the source, or point the reference at the right key with `airlock vault set-ref`")
	case errcode.CredentialExpired:
		return newError(http.StatusForbidden, CodeCredentialExpired, "credential "+path+" from "+name+" has expired",
			"renew the secret in its source")
	case errcode.CredentialInvalid:
		return newError(http.StatusBadGateway, CodeCredentialInvalid, name+" refused airlock's credentials for "+path,
			"check the source's auth settings with `airlock doctor`")
	}
	e := newError(http.StatusServiceUnavailable, errcode.CredentialSourceUnavailable,
		name+" did not answer for credential "+path,
		"check that the source is up (`airlock doctor`); airlock fails closed after the source's stale window")
	if se != nil && se.RetryAfter > 0 {
		e.RetryAfter = int(se.RetryAfter.Seconds() + 0.999)
	}
	return e
}
