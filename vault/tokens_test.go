package vault

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestOAuth2CredentialValidation(t *testing.T) {
	ok := OAuth2Settings{TokenURL: "https://login.example/token", ClientID: "c"}
	cases := map[string]struct {
		set OAuth2Settings
		sec OAuth2Secret
	}{
		"http token url":    {OAuth2Settings{TokenURL: "http://login.example/token", ClientID: "c"}, OAuth2Secret{ClientSecret: "s"}},
		"userinfo in url":   {OAuth2Settings{TokenURL: "https://u:p@login.example/token", ClientID: "c"}, OAuth2Secret{ClientSecret: "s"}},
		"no client id":      {OAuth2Settings{TokenURL: "https://login.example/token"}, OAuth2Secret{ClientSecret: "s"}},
		"no secret":         {ok, OAuth2Secret{}},
		"bad method":        {OAuth2Settings{TokenURL: ok.TokenURL, ClientID: "c", AuthMethod: "jwt"}, OAuth2Secret{ClientSecret: "s"}},
		"refresh, no token": {OAuth2Settings{TokenURL: ok.TokenURL, ClientID: "c", Grant: GrantRefreshToken}, OAuth2Secret{ClientSecret: "s"}},
		"unknown grant":     {OAuth2Settings{TokenURL: ok.TokenURL, ClientID: "c", Grant: "password"}, OAuth2Secret{ClientSecret: "s"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewOAuth2Credential("p", tc.set, tc.sec)
			if !errors.Is(err, ErrBadTokenCredential) {
				t.Fatalf("err = %v, want ErrBadTokenCredential", err)
			}
		})
	}
	c, err := NewOAuth2Credential("p", OAuth2Settings{TokenURL: ok.TokenURL, ClientID: "c", Grant: GrantRefreshToken, Scopes: []string{"a", "b"}},
		OAuth2Secret{RefreshToken: "rt-secret"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := OAuth2SettingsOf(c)
	if err != nil || set.Grant != GrantRefreshToken || set.AuthMethod != AuthMethodBasic || fmt.Sprint(set.Scopes) != "[a b]" {
		t.Fatalf("round trip: %+v, %v", set, err)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, OAuth2Secret{RefreshToken: "rt-secret"}); strings.Contains(s, "rt-secret") {
		t.Fatalf("formatting leaks: %s", s)
	}
	c.Value = NewSecret([]byte("rt-secret not json"))
	if _, err := OAuth2SecretOf(c); err == nil || strings.Contains(err.Error(), "rt-secret") {
		t.Fatalf("bad document: %v", err)
	}
}
