package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock/airlock/vault"
)

// Token credentials: `vault set-oauth2` and `vault set-aws`. Their settings
// go to the credential's metadata, their secrets to its value (a JSON
// document, see vault).

// listFlag collects a repeatable flag; each use may hold several
// space-separated values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, strings.Fields(s)...); return nil }

func vaultSetOAuth2Cmd(g *globals, fs *flagSet) runFunc {
	var set vault.OAuth2Settings
	var scopes listFlag
	fs.StringVar(&set.TokenURL, "token-url", "", "(required) token endpoint `URL` (https://)")
	fs.StringVar(&set.ClientID, "client-id", "", "(required) OAuth2 client `ID`")
	fs.Var(&scopes, "scope", "scope `S` to request (repeatable)")
	fs.StringVar(&set.Audience, "audience", "", "audience `A` (Auth0-style APIs)")
	fs.StringVar(&set.AuthMethod, "auth-method", vault.AuthMethodBasic, "client authentication: `basic|post`")
	fs.StringVar(&set.Grant, "grant", vault.GrantClientCredentials, "`grant`: client_credentials or refresh_token")
	secretFile := fs.String("client-secret-file", "", "refresh_token grant: read the client secret from `FILE`")
	return func(args []string) error {
		path, err := args[0], checkCredPath(args[0])
		if err != nil {
			return err
		}
		set.Scopes = scopes
		var sec vault.OAuth2Secret
		if set.Grant == vault.GrantRefreshToken && *secretFile != "" {
			b, err := readSecretFile(*secretFile, "client-secret")
			if err != nil {
				return err
			}
			sec.ClientSecret = string(b)
		}
		// Validate the flags before opening the vault or reading the secret.
		probe := sec
		probe.ClientSecret, probe.RefreshToken = "x", "x"
		if _, err := vault.NewOAuth2Credential(path, set, probe); err != nil {
			return usageError(err.Error())
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		what := "client secret"
		if set.Grant == vault.GrantRefreshToken {
			what = "refresh token"
		}
		value, err := readValue(what + " for " + path + ": ")
		if err != nil {
			return err
		}
		if set.Grant == vault.GrantRefreshToken {
			sec.RefreshToken = string(value)
		} else {
			sec.ClientSecret = string(value)
		}
		c, err := vault.NewOAuth2Credential(path, set, sec)
		if err != nil {
			return usageError(err.Error())
		}
		return storeTokenCredential(v, c)
	}
}

func vaultSetAWSCmd(g *globals, fs *flagSet) runFunc {
	keyID := fs.String("access-key-id", "", "(required) AWS access key `ID` (AKIA..., ASIA...)")
	withToken := fs.Bool("session-token-stdin", false, "also read a session token: the second line of stdin (or a second prompt)")
	return func(args []string) error {
		path, err := args[0], checkCredPath(args[0])
		if err != nil {
			return err
		}
		if *keyID == "" {
			return usageError("vault set-aws: --access-key-id is required")
		}
		v, err := openVault(g.home)
		if err != nil {
			return err
		}
		secret, token, err := readAWSSecrets(path, *withToken)
		if err != nil {
			return err
		}
		c, err := vault.NewAWSCredential(path, vault.AWSKeys{AccessKeyID: *keyID, SecretAccessKey: secret, SessionToken: token})
		if err != nil {
			return usageError(err.Error())
		}
		return storeTokenCredential(v, c)
	}
}

// readAWSSecrets reads the secret access key and, when asked, the session
// token: two lines of stdin, or two prompts on a terminal.
func readAWSSecrets(path string, withToken bool) (secret, token string, err error) {
	if isTerminal(Stdin) {
		b, err := readValue("secret access key for " + path + ": ")
		if err != nil || !withToken {
			return string(b), "", err
		}
		t, err := readValue("session token for " + path + ": ")
		return string(b), string(t), err
	}
	b, err := readValue("")
	if err != nil {
		return "", "", err
	}
	first, rest, _ := bytes.Cut(b, []byte("\n"))
	secret = strings.TrimSuffix(string(first), "\r")
	if withToken {
		token = string(stripNewline(rest))
		if token == "" || strings.Contains(token, "\n") {
			return "", "", withHint(errors.New("expected the session token on the second line of stdin"),
				"pipe two lines: the secret access key, then the session token")
		}
	} else if len(bytes.TrimSpace(rest)) > 0 {
		return "", "", withHint(errors.New("more than one line on stdin"), "pass --session-token-stdin to store a session token too")
	}
	return secret, token, nil
}

// storeTokenCredential saves c, keeping the creation time and expiry of a
// credential it replaces.
func storeTokenCredential(v *vault.Vault, c *vault.Credential) error {
	verb := "stored"
	err := v.Update(func(d *vault.Data) error {
		now := time.Now().UTC()
		c.CreatedAt, c.UpdatedAt = now, now
		if old, ok := d.Credentials[c.Path]; ok {
			c.CreatedAt, c.ExpiresAt, verb = old.CreatedAt, old.ExpiresAt, "updated"
		}
		if d.Credentials == nil {
			d.Credentials = map[string]*vault.Credential{}
		}
		d.Credentials[c.Path] = c
		return nil
	})
	if err != nil {
		return updateError("store "+c.Path, err)
	}
	fmt.Fprintf(Stderr, "airlock: %s %s (%s)\n", verb, c.Path, c.Kind)
	return nil
}
