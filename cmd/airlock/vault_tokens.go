package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/sigv4"
	"github.com/airlock/airlock/vault"
)

// Token credentials: `vault set-oauth2` and `vault set-aws`. Their settings
// go to the credential's metadata, their secrets to its value (a JSON
// document, see proxy/tokens.go).

const (
	usageVaultSetOAuth2 = "airlock vault set-oauth2 PATH --token-url URL --client-id ID [--scope S]... [--audience A] " +
		"[--auth-method basic|post] [--grant client_credentials|refresh_token] [--client-secret-file FILE]"
	usageVaultSetAWS = "airlock vault set-aws PATH --access-key-id ID [--session-token-stdin]"
)

// The two commands join the vault group of the dispatch table.
func init() {
	for _, c := range commands {
		if c.name == "vault" {
			c.sub = append(c.sub,
				&command{name: "set-oauth2", usage: usageVaultSetOAuth2, summary: "store an OAuth2 client (secret or refresh token from stdin, or a prompt)", run: cmdVaultSetOAuth2},
				&command{name: "set-aws", usage: usageVaultSetAWS, summary: "store an AWS access key for SigV4 signing (secret from stdin, or a prompt)", run: cmdVaultSetAWS},
			)
			c.usage = strings.Replace(c.usage, "set|", "set|set-oauth2|set-aws|", 1)
		}
	}
}

// listFlag collects a repeatable flag; each use may hold several
// space-separated values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, strings.Fields(s)...); return nil }

func cmdVaultSetOAuth2(g *globals, args []string) error {
	fs := newFlagSet("vault set-oauth2", usageVaultSetOAuth2)
	var set proxy.OAuth2Settings
	var scopes listFlag
	fs.StringVar(&set.TokenURL, "token-url", "", "token endpoint (https://)")
	fs.StringVar(&set.ClientID, "client-id", "", "OAuth2 client id")
	fs.Var(&scopes, "scope", "scope to request (repeatable)")
	fs.StringVar(&set.Audience, "audience", "", "audience parameter (Auth0-style APIs)")
	fs.StringVar(&set.AuthMethod, "auth-method", proxy.AuthMethodBasic, "client authentication: basic or post")
	fs.StringVar(&set.Grant, "grant", proxy.GrantClientCredentials, "grant: client_credentials or refresh_token")
	secretFile := fs.String("client-secret-file", "", "refresh_token grant: read the client secret from FILE")
	path, err := fs.parseOne(args, checkCredPath)
	if err != nil {
		return err
	}
	set.Scopes = scopes
	var sec proxy.OAuth2Secret
	if set.Grant == proxy.GrantRefreshToken && *secretFile != "" {
		b, err := readSecretFile(*secretFile, "client-secret")
		if err != nil {
			return err
		}
		sec.ClientSecret = string(b)
	}
	// Validate the flags before opening the vault or reading the secret.
	probe := sec
	probe.ClientSecret, probe.RefreshToken = "x", "x"
	if _, err := proxy.NewOAuth2Credential(path, set, probe); err != nil {
		return withHint(usageError(err.Error()), "usage: "+usageVaultSetOAuth2)
	}
	v, err := openVault(g.home)
	if err != nil {
		return err
	}
	what := "client secret"
	if set.Grant == proxy.GrantRefreshToken {
		what = "refresh token"
	}
	value, err := readValue(what + " for " + path + ": ")
	if err != nil {
		return err
	}
	if set.Grant == proxy.GrantRefreshToken {
		sec.RefreshToken = string(value)
	} else {
		sec.ClientSecret = string(value)
	}
	c, err := proxy.NewOAuth2Credential(path, set, sec)
	if err != nil {
		return withHint(usageError(err.Error()), "usage: "+usageVaultSetOAuth2)
	}
	return storeTokenCredential(v, c)
}

func cmdVaultSetAWS(g *globals, args []string) error {
	fs := newFlagSet("vault set-aws", usageVaultSetAWS)
	keyID := fs.String("access-key-id", "", "AWS access key id (AKIA..., ASIA...)")
	withToken := fs.Bool("session-token-stdin", false, "also read a session token: the second line of stdin (or a second prompt)")
	path, err := fs.parseOne(args, checkCredPath)
	if err != nil {
		return err
	}
	if *keyID == "" {
		return withHint(usageError("vault set-aws: --access-key-id is required"), "usage: "+usageVaultSetAWS)
	}
	v, err := openVault(g.home)
	if err != nil {
		return err
	}
	secret, token, err := readAWSSecrets(path, *withToken)
	if err != nil {
		return err
	}
	c, err := proxy.NewAWSCredential(path, sigv4.Credentials{AccessKeyID: *keyID, SecretAccessKey: secret, SessionToken: token})
	if err != nil {
		return withHint(usageError(err.Error()), "usage: "+usageVaultSetAWS)
	}
	return storeTokenCredential(v, c)
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
