package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/internal/oauth2"
	"github.com/airlock/airlock/vault"
)

// newTokenEndpoint is a loopback TLS token endpoint issuing tok1, tok2, ...
type tokenEndpoint struct {
	*httptest.Server
	n atomic.Int32
}

func newTokenEndpoint(t *testing.T, lifetime int) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok%d","token_type":"Bearer","expires_in":%d}`, te.n.Add(1), lifetime)
	}))
	t.Cleanup(te.Close)
	return te
}

func oauthCred(t *testing.T, te *tokenEndpoint) *vault.Credential {
	t.Helper()
	c, err := vault.NewOAuth2Credential("graph/app", vault.OAuth2Settings{TokenURL: te.URL + "/token", ClientID: "app id"},
		vault.OAuth2Secret{ClientSecret: "client-secret-9f2c"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetryUnauthorized(t *testing.T) {
	te := newTokenEndpoint(t, 3600)
	s := &Server{tokens: oauth2.New(oauth2.Config{Transport: te.Client().Transport})}
	cred := oauthCred(t, te)
	rule := &policy.Rule{Name: "graph", Inject: policy.Inject{Type: policy.InjectOAuth2}}
	var seen []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Header.Get("Authorization")+" "+string(body))
		status := 200
		if r.Header.Get("Authorization") == "Bearer tok1" {
			status = 401
		}
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("x")), Header: http.Header{}}, nil
	})
	d := &decision{ev: &event{}, rule: rule, cred: cred}
	ctx := context.WithValue(context.Background(), decisionKey{}, d)
	req := httptest.NewRequest("POST", "https://graph.example/v1/me", strings.NewReader("payload")).WithContext(ctx)
	req.RequestURI = ""
	if err := s.inject(req, rule, cred); err != nil {
		t.Fatal(err)
	}
	resp, err := (&oauth2.Retry{Base: base, Tokens: s.tokens, Judged: judgedWith}).RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("resp %v, err %v", resp, err)
	}
	want := []string{"Bearer tok1 payload", "Bearer tok2 payload"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("upstream saw %q, want %q", seen, want)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestInjectKindMismatch(t *testing.T) {
	static := &vault.Credential{Path: "static/key", Value: vault.NewSecret([]byte("v"))}
	aws, err := newAWSCredential("aws/key", awsTestCreds)
	if err != nil {
		t.Fatal(err)
	}
	oauth, err := vault.NewOAuth2Credential("o/key", vault.OAuth2Settings{TokenURL: "https://login.example/token", ClientID: "c"}, vault.OAuth2Secret{ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		typ  string
		cred *vault.Credential
	}{
		"oauth2 rule, static credential": {policy.InjectOAuth2, static},
		"sigv4 rule, oauth2 credential":  {policy.InjectSigV4, oauth},
		"bearer rule, aws credential":    {policy.InjectBearer, aws},
		"default rule, oauth2":           {"", oauth},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "https://api.example/", nil)
			err := (&Server{}).inject(req, &policy.Rule{Name: "r", Inject: policy.Inject{Type: tc.typ}}, tc.cred)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeCredentialInvalid {
				t.Fatalf("err = %v, want CREDENTIAL_INVALID", err)
			}
			if req.Header.Get("Authorization") != "" {
				t.Fatal("something was injected")
			}
		})
	}
}
