package proxy

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

func TestInjectors(t *testing.T) {
	cred := &vault.Credential{Path: "p", Value: vault.NewSecret([]byte("s3cret"))}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := map[string]struct {
		inject   policy.Inject
		username string
		in       string // request URL
		agentHdr http.Header
		header   string
		want     string
		query    string
	}{
		"bearer default":      {inject: policy.Inject{}, header: "Authorization", want: "Bearer s3cret"},
		"bearer replaces two": {inject: policy.Inject{Type: "bearer"}, agentHdr: http.Header{"Authorization": {"a", "b"}}, header: "Authorization", want: "Bearer s3cret"},
		"api_key default":     {inject: policy.Inject{Type: "api_key"}, header: "X-Api-Key", want: "s3cret"},
		"api_key header":      {inject: policy.Inject{Type: "api_key", Header: "x-goog-api-key"}, header: "X-Goog-Api-Key", want: "s3cret"},
		"custom format":       {inject: policy.Inject{Type: "custom", Header: "X-Token", Format: "Token {secret}"}, header: "X-Token", want: "Token s3cret"},
		"basic pair":          {inject: policy.Inject{Type: "basic"}, header: "Authorization", want: "Basic " + b64("s3cret")},
		"basic rule user":     {inject: policy.Inject{Type: "basic", Username: "bob"}, header: "Authorization", want: "Basic " + b64("bob:s3cret")},
		"basic cred user":     {inject: policy.Inject{Type: "basic"}, username: "amy", header: "Authorization", want: "Basic " + b64("amy:s3cret")},
		"query replaces":      {inject: policy.Inject{Type: "query", Param: "key"}, in: "https://h/p?a=1&key=agent&b=2&key=x", query: "a=1&b=2&key=s3cret"},
		"query escaped name":  {inject: policy.Inject{Type: "query", Param: "api key"}, in: "https://h/p?api%20key=agent", query: "api+key=s3cret"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := tc.in
			if in == "" {
				in = "https://h/p"
			}
			u, _ := url.Parse(in)
			req := &http.Request{URL: u, Header: http.Header{}}
			for k, v := range tc.agentHdr {
				req.Header[k] = v
			}
			c := *cred
			c.Username = tc.username
			rule := &policy.Rule{Name: "r", Inject: tc.inject}
			fn, err := injectorFor(rule)
			if err != nil {
				t.Fatal(err)
			}
			if err := fn(req, rule, &c); err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				if got := req.Header.Values(tc.header); len(got) != 1 || got[0] != tc.want {
					t.Errorf("%s = %q, want [%q]", tc.header, got, tc.want)
				}
			}
			if tc.query != "" && req.URL.RawQuery != tc.query {
				t.Errorf("query = %q, want %q", req.URL.RawQuery, tc.query)
			}
		})
	}
}

func TestInjectRefusesControlBytes(t *testing.T) {
	req := &http.Request{URL: &url.URL{}, Header: http.Header{}}
	rule := &policy.Rule{Name: "r"}
	err := injectHeader(req, rule, &vault.Credential{Path: "p", Value: vault.NewSecret([]byte("a\r\nX-Evil: 1"))})
	if err == nil {
		t.Fatal("a secret with CRLF was injected")
	}
	if got := err.Error(); strings.Contains(got, "X-Evil") {
		t.Errorf("error echoes the secret: %s", got)
	}
}
