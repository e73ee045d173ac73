package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/airlock/airlock/policy"
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
// with its name in canonical form.
type builtHeader struct{ name, value string }

// injectedHeader is headerFor, checked, canonical and memoised for static
// credentials: a vault snapshot's credentials and a policy's rules are
// immutable, so the pair of pointers names the header for good (as with
// the scrubbers' cache, scrubfast.go).
func injectedHeader(rule *policy.Rule, cred *vault.Credential) (builtHeader, error) {
	static := vault.KindOf(cred) == vault.KindStatic
	k := replacerKey{cred: cred, rule: rule}
	if static {
		headers.mu.Lock()
		h, ok := headers.m[k]
		headers.mu.Unlock()
		if ok {
			return h, nil
		}
	}
	name, value, err := headerFor(rule, cred)
	if err != nil {
		return builtHeader{}, err
	}
	if !validHeaderValue(value) {
		return builtHeader{}, fmt.Errorf("credential %s: value contains bytes not allowed in a header", cred.Path)
	}
	h := builtHeader{name: http.CanonicalHeaderKey(name), value: value}
	if static {
		headers.mu.Lock()
		if headers.m == nil || len(headers.m) >= maxCachedReplacers {
			headers.m = make(map[replacerKey]builtHeader)
		}
		headers.m[k] = h
		headers.mu.Unlock()
	}
	return h, nil
}

// headers memoises injectedHeader; bounded like the scrubbers' cache
// (cleared when full: reloads leave stale keys behind).
var headers struct {
	mu sync.Mutex // guards m
	m  map[replacerKey]builtHeader
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
