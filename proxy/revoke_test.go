package proxy

import (
	"crypto/ed25519"
	"testing"

	"github.com/airlock/airlock/vault"
)

func TestRevokedAgents(t *testing.T) {
	k1 := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	seed := make([]byte, 32)
	seed[0] = 1
	k2 := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	agent := func(key ed25519.PublicKey, tok string, disabled bool) *vault.Agent {
		return &vault.Agent{PublicKey: key, TokenHash: []byte(tok), Disabled: disabled}
	}
	old := &vault.Data{Agents: map[string]*vault.Agent{
		"same": agent(k1, "t", false), "gone": agent(k1, "t", false), "off": agent(k1, "t", false),
		"newkey": agent(k1, "t", false), "newtoken": agent(k1, "t", false), "wasoff": agent(k1, "t", true),
	}}
	next := &vault.Data{Agents: map[string]*vault.Agent{
		"same": agent(k1, "t", false), "off": agent(k1, "t", true),
		"newkey": agent(k2, "t", false), "newtoken": agent(k1, "u", false), "wasoff": agent(k1, "t", true),
		"added": agent(k2, "v", false),
	}}
	got := revokedAgents(old, next)
	want := map[string]string{"gone": RevokeRemoved, "off": RevokeDisabled, "newkey": RevokeRekeyed, "newtoken": RevokeRekeyed}
	if len(got) != len(want) {
		t.Fatalf("revokedAgents = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if n := len(revokedAgents(nil, next)); n != 0 {
		t.Errorf("from nothing: %d revoked", n)
	}
}
