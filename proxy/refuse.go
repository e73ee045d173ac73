package proxy

import "github.com/airlock/airlock/proxy/errcode"

// Error is the refusal type of both doors ([errcode.Error]).
type Error = errcode.Error

// Error codes, re-exported from [errcode] for existing callers.
const (
	CodeAuthFailed         = errcode.AuthFailed
	CodeAccessDenied       = errcode.AccessDenied
	CodeCredentialNotFound = errcode.CredentialNotFound
	CodeCredentialExpired  = errcode.CredentialExpired
	CodeCredentialInvalid  = errcode.CredentialInvalid
	CodeVaultLocked        = errcode.VaultLocked
	CodeRateLimited        = errcode.RateLimited
	CodeEgressBlocked      = errcode.EgressBlocked
	CodeUpstreamError      = errcode.UpstreamError
	CodeBadRequest         = errcode.BadRequest
	CodeMisdirected        = errcode.Misdirected
	CodeLoopDetected       = errcode.LoopDetected
	CodeTooManyConns       = errcode.TooManyConns
)

var (
	newError = errcode.New
	asError  = errcode.As
)
