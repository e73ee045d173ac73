package proxy

import (
	"io"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

// Forwarders kept while cmd/airlock moves to the sub-packages (issue 15);
// new code uses package audit and package vault directly.

type (
	// Deprecated: use audit.Line.
	AuditLine = audit.Line
	// Deprecated: use audit.Options.
	AuditOptions = audit.Options
	// Deprecated: use audit.Log.
	AuditLog = audit.Log
	// Deprecated: use audit.ChainError.
	ChainError = audit.ChainError
	// Deprecated: use audit.AsyncWriter.
	AsyncWriter = audit.AsyncWriter
)

// Deprecated: use audit.ErrKey / audit.ErrChain.
var (
	ErrAuditKey   = audit.ErrKey
	ErrAuditChain = audit.ErrChain
)

// OpenAuditLog opens the hash-chained audit file. Deprecated: use audit.Open.
func OpenAuditLog(o AuditOptions) (*AuditLog, error) { return audit.Open(o) }

// VerifyAudit checks audit files. Deprecated: use audit.Verify.
func VerifyAudit(key []byte, files ...string) (int, error) { return audit.Verify(key, files...) }

// NewAsyncWriter wraps out. Deprecated: use audit.NewAsyncWriter.
func NewAsyncWriter(out io.Writer, queue int) *AsyncWriter { return audit.NewAsyncWriter(out, queue) }

// Token credential codecs now live in package vault.
type (
	// Deprecated: use vault.OAuth2Settings.
	OAuth2Settings = vault.OAuth2Settings
	// Deprecated: use vault.OAuth2Secret.
	OAuth2Secret = vault.OAuth2Secret
)

// Deprecated: use the vault constants.
const (
	GrantClientCredentials = vault.GrantClientCredentials
	GrantRefreshToken      = vault.GrantRefreshToken
	AuthMethodBasic        = vault.AuthMethodBasic
	AuthMethodPost         = vault.AuthMethodPost
)

// Deprecated: use vault.ErrBadTokenCredential.
var ErrBadTokenCredential = vault.ErrBadTokenCredential

// NewOAuth2Credential is vault.NewOAuth2Credential.
func NewOAuth2Credential(path string, set OAuth2Settings, sec OAuth2Secret) (*vault.Credential, error) {
	return vault.NewOAuth2Credential(path, set, sec)
}

// OAuth2SettingsOf is vault.OAuth2SettingsOf.
func OAuth2SettingsOf(c *vault.Credential) (OAuth2Settings, error) { return vault.OAuth2SettingsOf(c) }

// OAuth2SecretOf is vault.OAuth2SecretOf.
func OAuth2SecretOf(c *vault.Credential) (OAuth2Secret, error) { return vault.OAuth2SecretOf(c) }

// NewAWSCredential is vault.NewAWSCredential with sigv4's key type.
func NewAWSCredential(path string, c sigv4.Credentials) (*vault.Credential, error) {
	return vault.NewAWSCredential(path, vault.AWSKeys(c))
}

// AWSCredentialsOf is vault.AWSKeysOf with sigv4's key type.
func AWSCredentialsOf(c *vault.Credential) (sigv4.Credentials, error) {
	k, err := vault.AWSKeysOf(c)
	return sigv4.Credentials(k), err
}

var kindOf = vault.KindOf
