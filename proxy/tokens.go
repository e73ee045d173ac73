package proxy

import (
	"net/http"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// inject puts cred into out the way rule says: oauth2 through the token
// cache, everything else through the registered injectors. A token
// credential is never handed to a static injector (that would send its
// JSON secret document upstream).
func (s *Server) inject(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	typ := rule.Inject.Type
	switch kind := vault.KindOf(cred); {
	case typ == policy.InjectOAuth2 && kind == vault.KindOAuth2:
		return s.tokens.Inject(out, rule, cred)
	case typ == policy.InjectSigV4 && kind == vault.KindAWS:
		return injectSigV4(out, rule, cred)
	case typ == policy.InjectOAuth2 || typ == policy.InjectSigV4 || kind == vault.KindOAuth2 || kind == vault.KindAWS:
		return newError(http.StatusBadGateway, CodeCredentialInvalid,
			"rule "+rule.Name+" injects "+orString(typ, policy.InjectBearer)+" but credential "+cred.Path+" is of kind "+kind,
			"oauth2 rules need a credential stored with `airlock vault set-oauth2`, aws_sigv4 rules one stored with `airlock vault set-aws`")
	}
	inj, err := injectorFor(rule)
	if err != nil {
		return err
	}
	return inj(out, rule, cred)
}

// tokenSecrets lists the secret strings a response must not echo for cred
// beyond its raw value: the client secret and refresh token of an oauth2
// credential and its live access tokens, or an aws secret key and session
// token. For the scrubber.
func (s *Server) tokenSecrets(cred *vault.Credential) []string {
	var out []string
	switch vault.KindOf(cred) {
	case vault.KindOAuth2:
		if sec, err := vault.OAuth2SecretOf(cred); err == nil {
			out = append(out, sec.ClientSecret, sec.RefreshToken)
		}
		out = append(out, s.tokens.Live(cred.Path)...)
	case vault.KindAWS:
		if c, err := awsCredentials(cred); err == nil {
			out = append(out, c.SecretAccessKey, c.SessionToken)
		}
	}
	kept := out[:0]
	for _, v := range out {
		if v != "" {
			kept = append(kept, v)
		}
	}
	return kept
}
