package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/airlock/airlock/proxy/errcode"
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
