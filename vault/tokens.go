package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Token credentials (vault kinds "oauth2" and "aws") keep their non-secret
// settings in Credential.Metadata and their secrets in Credential.Value as
// a small JSON document:
//
//	oauth2: Metadata token_url, client_id, scopes (space-separated),
//	        audience, auth_method (basic|post), grant (client_credentials|refresh_token)
//	        Value {"client_secret": "...", "refresh_token": "..."}
//	aws:    Metadata access_key_id
//	        Value {"secret_access_key": "...", "session_token": "..."}

// Grants and client authentication methods of oauth2 credentials.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	AuthMethodBasic        = "basic" // client id and secret in an Authorization: Basic header (RFC 6749 2.3.1)
	AuthMethodPost         = "post"  // client id and secret in the form body
)

// ErrBadTokenCredential is wrapped by the errors of the constructors and
// readers below when a credential's settings or value are unusable.
var ErrBadTokenCredential = errors.New("bad token credential")

// OAuth2Settings are the non-secret settings of an oauth2 credential.
type OAuth2Settings struct {
	TokenURL   string
	ClientID   string
	Scopes     []string
	Audience   string
	AuthMethod string // AuthMethodBasic (default) or AuthMethodPost
	Grant      string // GrantClientCredentials (default) or GrantRefreshToken
}

// OAuth2Secret is the secret part of an oauth2 credential.
type OAuth2Secret struct {
	ClientSecret string `json:"client_secret,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// String never shows the secrets.
func (OAuth2Secret) String() string { return "[REDACTED]" }

// GoString never shows the secrets.
func (OAuth2Secret) GoString() string { return "[REDACTED]" }

// NewOAuth2Credential validates and builds an oauth2 credential for the
// vault (what `airlock vault set-oauth2` stores).
func NewOAuth2Credential(path string, set OAuth2Settings, sec OAuth2Secret) (*Credential, error) {
	set = set.withDefaults()
	if err := set.validate(); err != nil {
		return nil, fmt.Errorf("oauth2 credential %s: %w", path, err)
	}
	if err := sec.validate(set); err != nil {
		return nil, fmt.Errorf("oauth2 credential %s: %w", path, err)
	}
	md := map[string]string{
		"token_url": set.TokenURL, "client_id": set.ClientID, "auth_method": set.AuthMethod, "grant": set.Grant,
	}
	if len(set.Scopes) > 0 {
		md["scopes"] = strings.Join(set.Scopes, " ")
	}
	if set.Audience != "" {
		md["audience"] = set.Audience
	}
	val, err := json.Marshal(sec)
	if err != nil {
		return nil, fmt.Errorf("oauth2 credential %s: encode secret: %w", path, err)
	}
	return &Credential{Path: path, Kind: KindOAuth2, Value: NewSecret(val), Metadata: md}, nil
}

// OAuth2SettingsOf reads the settings of an oauth2 credential.
func OAuth2SettingsOf(c *Credential) (OAuth2Settings, error) {
	if c.Kind != KindOAuth2 {
		return OAuth2Settings{}, fmt.Errorf("credential %s is of kind %q, not oauth2: %w", c.Path, KindOf(c), ErrBadTokenCredential)
	}
	md := c.Metadata
	set := OAuth2Settings{
		TokenURL: md["token_url"], ClientID: md["client_id"], Scopes: strings.Fields(md["scopes"]),
		Audience: md["audience"], AuthMethod: md["auth_method"], Grant: md["grant"],
	}.withDefaults()
	if err := set.validate(); err != nil {
		return OAuth2Settings{}, fmt.Errorf("credential %s: %w", c.Path, err)
	}
	return set, nil
}

// OAuth2SecretOf decodes the secret document of an oauth2 credential.
// Errors never quote the value.
func OAuth2SecretOf(c *Credential) (OAuth2Secret, error) {
	var sec OAuth2Secret
	if err := json.Unmarshal(c.Value.Bytes(), &sec); err != nil {
		return sec, fmt.Errorf("credential %s: value is not an oauth2 secret document (store it with `airlock vault set-oauth2`): %w", c.Path, ErrBadTokenCredential)
	}
	return sec, nil
}

func (s OAuth2Settings) withDefaults() OAuth2Settings {
	if s.AuthMethod == "" {
		s.AuthMethod = AuthMethodBasic
	}
	if s.Grant == "" {
		s.Grant = GrantClientCredentials
	}
	return s
}

func (s OAuth2Settings) validate() error {
	u, err := url.Parse(s.TokenURL)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil:
		return fmt.Errorf("token url must be an https:// URL without credentials: %w", ErrBadTokenCredential)
	case s.ClientID == "":
		return fmt.Errorf("client id is empty: %w", ErrBadTokenCredential)
	case s.AuthMethod != AuthMethodBasic && s.AuthMethod != AuthMethodPost:
		return fmt.Errorf("auth method %q (want basic or post): %w", s.AuthMethod, ErrBadTokenCredential)
	case s.Grant != GrantClientCredentials && s.Grant != GrantRefreshToken:
		return fmt.Errorf("grant %q (want client_credentials or refresh_token): %w", s.Grant, ErrBadTokenCredential)
	}
	return nil
}

func (sec OAuth2Secret) validate(set OAuth2Settings) error {
	if set.Grant == GrantClientCredentials && sec.ClientSecret == "" {
		return fmt.Errorf("the client_credentials grant needs a client secret: %w", ErrBadTokenCredential)
	}
	if set.Grant == GrantRefreshToken && sec.RefreshToken == "" {
		return fmt.Errorf("the refresh_token grant needs a refresh token: %w", ErrBadTokenCredential)
	}
	return nil
}

// AWSKeys are the keys of an aws credential (the shape of sigv4.Credentials).
type AWSKeys struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string // optional (temporary credentials from STS)
}

// String names the access key id only.
func (k AWSKeys) String() string { return "aws key " + k.AccessKeyID }

// GoString names the access key id only.
func (k AWSKeys) GoString() string { return k.String() }

type awsSecret struct {
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

// NewAWSCredential builds an aws credential for the vault (what
// `airlock vault set-aws` stores).
func NewAWSCredential(path string, c AWSKeys) (*Credential, error) {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, fmt.Errorf("aws credential %s: access key id and secret access key are required: %w", path, ErrBadTokenCredential)
	}
	val, err := json.Marshal(awsSecret{SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken})
	if err != nil {
		return nil, fmt.Errorf("aws credential %s: encode secret: %w", path, err)
	}
	return &Credential{Path: path, Kind: KindAWS, Value: NewSecret(val),
		Metadata: map[string]string{"access_key_id": c.AccessKeyID}}, nil
}

// AWSKeysOf reads an aws credential. Errors never quote the value.
func AWSKeysOf(c *Credential) (AWSKeys, error) {
	if c.Kind != KindAWS {
		return AWSKeys{}, fmt.Errorf("credential %s is of kind %q, not aws: %w", c.Path, KindOf(c), ErrBadTokenCredential)
	}
	var sec awsSecret
	if err := json.Unmarshal(c.Value.Bytes(), &sec); err != nil || sec.SecretAccessKey == "" || c.Metadata["access_key_id"] == "" {
		return AWSKeys{}, fmt.Errorf("credential %s: not a complete aws credential (store it with `airlock vault set-aws`): %w", c.Path, ErrBadTokenCredential)
	}
	return AWSKeys{AccessKeyID: c.Metadata["access_key_id"], SecretAccessKey: sec.SecretAccessKey, SessionToken: sec.SessionToken}, nil
}

// KindOf is c.Kind, KindStatic when empty.
func KindOf(c *Credential) string {
	if c.Kind == "" {
		return KindStatic
	}
	return c.Kind
}
