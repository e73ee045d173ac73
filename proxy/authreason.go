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

// authToken checks an agent's proxy token against the vault on disk: when
// the file changed since last looked at (one stat per CONNECT or plain
// request), it is reloaded first, so an agent the CLI added, removed or
// re-keyed a moment ago is judged by its new entry, not after the poll.
func (s *Server) authToken(v *vault.Vault, name, token string) bool {
	ok := tokenOK(v.Snapshot(), name, token)
	if !s.vaultFileChanged(v) {
		return ok
	}
	if changed, err := s.ReloadVault(); err != nil || !changed {
		return ok
	}
	nv := s.Vault()
	if nv == nil {
		return false
	}
	return tokenOK(nv.Snapshot(), name, token)
}

// tokenOK reports whether token authenticates agent name: its own token
// or a live run token of `airlock run` (runtoken.go).
func tokenOK(d *vault.Data, name, token string) bool {
	_, ok := d.AuthenticateToken(name, token)
	return ok || authenticateRunToken(d, name, token)
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
