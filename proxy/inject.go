package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/awsauth"
	"github.com/airlock/airlock/proxy/internal/placeholder"
	"github.com/airlock/airlock/proxy/internal/readmap"
	"github.com/airlock/airlock/vault"
)

// Injector puts a credential into an outbound request. The request is
// airlock's own copy (never the agent's); an injector replaces any value the
// agent supplied for the same header or parameter.
type Injector func(out *http.Request, rule *policy.Rule, cred *vault.Credential) error

// injectors by policy inject type; token kinds (oauth2, aws_sigv4) register
// theirs with RegisterInjector.
var injectors = map[string]Injector{
	policy.InjectBearer: injectHeader,
	policy.InjectAPIKey: injectHeader,
	policy.InjectCustom: injectHeader,
	policy.InjectBasic:  injectBasic,
	policy.InjectQuery:  injectQuery,
	// The agent wrote where the secret goes; rewriteOut has substituted it.
	policy.InjectPlaceholder: func(*http.Request, *policy.Rule, *vault.Credential) error { return nil },
}

// RegisterInjector installs the injector for an inject type. Call it from
// init functions only.
func RegisterInjector(typ string, fn Injector) { injectors[typ] = fn }

// injectorFor returns the injector for the rule's type.
func injectorFor(rule *policy.Rule) (Injector, error) {
	typ := rule.Inject.Type
	if typ == "" {
		typ = policy.InjectBearer
	}
	fn, ok := injectors[typ]
	if !ok {
		return nil, fmt.Errorf("rule %s: inject type %q is not supported by this build", rule.Name, typ)
	}
	return fn, nil
}

// headerFor returns the header name and value the rule injects for cred
// (bearer, api_key, custom, basic). It is what http_header over the RPC
// door hands out.
func headerFor(rule *policy.Rule, cred *vault.Credential) (name, value string, err error) {
	secret := string(cred.Value.Bytes())
	switch rule.Inject.Type {
	case "", policy.InjectBearer:
		return "Authorization", format(rule.Inject.Format, "Bearer {secret}", secret), nil
	case policy.InjectAPIKey:
		return orString(rule.Inject.Header, "X-API-Key"), format(rule.Inject.Format, "{secret}", secret), nil
	case policy.InjectCustom:
		return rule.Inject.Header, format(rule.Inject.Format, "{secret}", secret), nil
	case policy.InjectBasic:
		return "Authorization", basicValue(rule, cred), nil
	}
	return "", "", fmt.Errorf("rule %s: inject type %q has no single header", rule.Name, rule.Inject.Type)
}

func injectHeader(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	h, err := injectedHeader(rule, cred)
	if err != nil {
		return err
	}
	out.Header.Del(h.name) // drops every agent-supplied copy, folded or repeated
	out.Header[h.name] = []string{h.value}
	return nil
}

// builtHeader is the header a rule injects for a credential, checked and
// with its name in canonical form, or why it cannot be injected.
type builtHeader struct {
	name, value string
	err         error
}

// injectedHeader is headerFor, checked, canonical and memoised for static
// credentials: a vault snapshot's credentials and a policy's rules are
// immutable, so the pair of pointers names the header (or its error) for
// good, as it names the scrubber (observe.go's replacerKey).
func injectedHeader(rule *policy.Rule, cred *vault.Credential) (builtHeader, error) {
	var h builtHeader
	if vault.KindOf(cred) == vault.KindStatic {
		h = headers.Get(replacerKey{cred: cred, rule: rule}, func() builtHeader { return buildHeader(rule, cred) })
	} else {
		h = buildHeader(rule, cred)
	}
	return h, h.err
}

// headers memoises injectedHeader, bounded like the scrubbers' cache
// (started over when full, and at every reload: dropStaleCaches). It is
// the package's: the injectors are plain functions of rule and
// credential.
var headers readmap.Map[replacerKey, builtHeader]

// buildHeader is injectedHeader's making of a header.
func buildHeader(rule *policy.Rule, cred *vault.Credential) builtHeader {
	name, value, err := headerFor(rule, cred)
	if err != nil {
		return builtHeader{err: err}
	}
	if !validHeaderValue(value) {
		return builtHeader{err: fmt.Errorf("credential %s: value contains bytes not allowed in a header", cred.Path)}
	}
	return builtHeader{name: http.CanonicalHeaderKey(name), value: value}
}

// dropStaleCaches empties the caches keyed by rule and credential
// pointers once a reload has replaced them: their entries would only keep
// the old policy's rules and the old vault's secrets (old secrets!) in
// memory until the caches fill up. Requests still judged under the old
// ones rebuild what they need.
func (s *Server) dropStaleCaches() {
	s.replacers.Clear()
	headers.Clear()
}

func basicValue(rule *policy.Rule, cred *vault.Credential) string {
	user := orString(rule.Inject.Username, cred.Username)
	pair := string(cred.Value.Bytes())
	if user != "" {
		pair = user + ":" + pair
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(pair))
}

func injectBasic(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	out.Header.Del("Authorization")
	out.Header.Set("Authorization", basicValue(rule, cred))
	return nil
}

// injectQuery sets the rule's query parameter, dropping every agent-supplied
// occurrence and keeping the other parameters in their order.
func injectQuery(out *http.Request, rule *policy.Rule, cred *vault.Credential) error {
	param := rule.Inject.Param
	var kept []string
	for _, kv := range strings.Split(out.URL.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, _, _ := strings.Cut(kv, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == param || k == param {
			continue
		}
		kept = append(kept, kv)
	}
	kept = append(kept, url.QueryEscape(param)+"="+url.QueryEscape(string(cred.Value.Bytes())))
	out.URL.RawQuery = strings.Join(kept, "&")
	out.URL.ForceQuery = false
	return nil
}

func format(tmpl, def, secret string) string {
	if tmpl == "" {
		tmpl = def
	}
	return strings.ReplaceAll(tmpl, "{secret}", secret)
}

func orString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// validHeaderValue refuses control characters a secret could smuggle into
// the request (CR, LF, NUL).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

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
		return awsauth.Inject(out, rule, cred)
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
// credential and its live access tokens (live, from the token cache), or
// an aws secret key and session token. For the scrubber.
func tokenSecrets(cred *vault.Credential, live []string) []string {
	var out []string
	switch vault.KindOf(cred) {
	case vault.KindOAuth2:
		if sec, err := vault.OAuth2SecretOf(cred); err == nil {
			out = append(out, sec.ClientSecret, sec.RefreshToken)
		}
		out = append(out, live...)
	case vault.KindAWS:
		if c, err := awsauth.Credentials(cred); err == nil {
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

// judgedWith is the rule and credential req was judged with (oauth2.Retry).
func judgedWith(req *http.Request) (*policy.Rule, *vault.Credential) {
	d := decisionFrom(req.Context())
	if d == nil {
		return nil, nil
	}
	return d.rule, d.cred
}

// placeholders substitutes or refuses the placeholders of out for d
// ({{airlock:PATH}}, package internal/placeholder): on a rule that binds
// them, the rule's own credential; anywhere else, 403
// PLACEHOLDER_NOT_ALLOWED.
func (s *Server) placeholders(out *http.Request, d *decision) error {
	if d.rule != nil && d.rule.Inject.Placeholders && d.cred != nil {
		a, err := placeholder.Request(out, placeholder.Only(d.rule.Credential, d.cred.Value.Bytes()), placeholder.DefaultBufferLimit)
		if err != nil {
			return placeholderError(err)
		}
		d.bodyRefused = a.BodyErr
		if len(a.Used) > 0 {
			s.log.Debug("placeholders substituted", fieldAgent(d.agent), fieldHost(d.host), zap.Strings("credentials", a.Used))
		}
		return nil
	}
	if placeholder.HeadMayHold(out) {
		head := *out // headers and URL only: the body is sniffed below
		head.Body = nil
		if _, err := placeholder.Request(&head, nil, 0); err != nil {
			return placeholderError(err)
		}
	}
	refused, err := placeholder.Sniff(out)
	if err != nil {
		return err
	}
	if refused != nil {
		d.bodyRefused = refused
	}
	return nil
}
