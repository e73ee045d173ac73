package vault

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestSecretNeverFormatted(t *testing.T) {
	const value = "sk-live-VERYSECRET"
	s := NewSecret([]byte(value))
	cred := &Credential{Path: "p", Value: s}
	data := &Data{Credentials: map[string]*Credential{"p": cred}, System: map[string]Secret{"k": s}}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outputs["secret "+verb] = fmt.Sprintf(verb, s)
		outputs["pointer "+verb] = fmt.Sprintf(verb, &s)
		outputs["credential "+verb] = fmt.Sprintf(verb, *cred)
		outputs["data "+verb] = fmt.Sprintf(verb, data.System)
	}
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	outputs["Sprint"] = fmt.Sprint(s, cred)
	for name, v := range map[string]any{"secret": s, "credential": cred, "data": data} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs["json "+name] = string(b)
	}
	txt, _ := s.MarshalText()
	outputs["text"] = string(txt)
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, form := range []string{value, hex.EncodeToString([]byte(value)), strings.ToUpper(hex.EncodeToString([]byte(value)))} {
				if strings.Contains(out, form) {
					t.Fatalf("%q leaks the value", out)
				}
			}
			if !strings.Contains(out, redacted) {
				t.Fatalf("%q lacks %s", out, redacted)
			}
		})
	}
	if !s.Equal([]byte(value)) || s.Equal([]byte("other")) || s.Len() != len(value) || s.IsZero() {
		t.Fatal("Secret accessors broken")
	}
}

func TestProxyToken(t *testing.T) {
	seed := make([]byte, 32)
	// HMAC-SHA256(key=32 zero bytes, "airlock proxy token"), computed independently:
	// python3 -c 'import hmac,hashlib;print(hmac.new(bytes(32),b"airlock proxy token",hashlib.sha256).hexdigest())'
	const want = "b6dd5a2b4d291981d968beab747c56bcec746f22874b2aa589b02ebed767250f"
	if got := ProxyToken(seed); got != want {
		t.Fatalf("ProxyToken = %s, want %s", got, want)
	}
	h := HashToken("abc") // SHA-256("abc")
	if hex.EncodeToString(h) != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken = %x", h)
	}
}

func TestAuthenticateToken(t *testing.T) {
	d := openFixture(t).Snapshot().Clone()
	good := ProxyToken(fixtureSeed)
	d.SetAgent(&Agent{Name: "off", TokenHash: HashToken(good), Disabled: true})
	cases := map[string]struct {
		name, token string
		ok          bool
	}{
		"valid":          {name: "bot", token: good, ok: true},
		"wrong token":    {name: "bot", token: good + "0"},
		"empty token":    {name: "bot"},
		"unknown agent":  {name: "ghost", token: good},
		"disabled agent": {name: "off", token: good},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, ok := d.AuthenticateToken(tc.name, tc.token)
			if ok != tc.ok || (ok && a.Name != tc.name) || (!ok && a != nil) {
				t.Fatalf("AuthenticateToken = %v, %v; want ok %v", a, ok, tc.ok)
			}
		})
	}
}
