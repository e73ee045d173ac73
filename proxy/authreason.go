package proxy

import (
	"net/http"

	"github.com/airlock/airlock/vault"
)

// Why a proxy authentication failed, for the server log (never the
// token): the 407 the agent sees stays "unknown agent or wrong token".
const (
	authNoCredentials = "no credentials"
	authUnknownAgent  = "unknown agent"
	authBadToken      = "bad token"
	authDisabled      = "disabled"
	authSealed        = "vault sealed"
)

// authFailReason says why r's Proxy-Authorization was refused.
func (s *Server) authFailReason(r *http.Request) string {
	name, _, ok := parseProxyAuth(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return authNoCredentials
	}
	v := s.Vault()
	if v == nil {
		return authSealed
	}
	a := v.Snapshot().Agents[name]
	switch {
	case a == nil:
		return authUnknownAgent
	case a.Disabled:
		return authDisabled
	}
	return authBadToken
}

// authToken checks an agent's proxy token. On a miss it first makes sure
// the vault in force is the one on disk: an agent added (or re-keyed) by
// the CLI a moment ago works at once instead of after the next poll.
func (s *Server) authToken(v *vault.Vault, name, token string) bool {
	if _, ok := v.Snapshot().AuthenticateToken(name, token); ok {
		return true
	}
	if !s.vaultFileChanged(v) {
		return false
	}
	if changed, err := s.ReloadVault(); err != nil || !changed {
		return false
	}
	_, ok := s.Vault().Snapshot().AuthenticateToken(name, token)
	return ok
}

// vaultFileChanged reports whether the vault file's size or mtime differs
// from the last time a miss looked (one stat; no read, no decryption).
func (s *Server) vaultFileChanged(v *vault.Vault) bool {
	st := stampOf(v.Path())
	if prev := s.ops.vaultSeen.Swap(&st); prev != nil && prev.same(st) {
		return false
	}
	return st.ok
}
