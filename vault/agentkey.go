package vault

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"
)

// NewAgent returns the registry entry of agent name for an Ed25519 seed
// (SanctumAI key format): its public key and the hash of the proxy token
// derived from the seed ([ProxyToken]). A nil seed draws a fresh one; the
// seed used is returned.
func NewAgent(name string, seed []byte, now time.Time) (*Agent, []byte, error) {
	if seed == nil {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, nil, fmt.Errorf("generate key of agent %s: %w", name, err)
		}
	}
	if len(seed) != ed25519.SeedSize {
		return nil, nil, fmt.Errorf("key of agent %s: seed is %d bytes, want %d", name, len(seed), ed25519.SeedSize)
	}
	a := &Agent{Name: name, CreatedAt: now,
		PublicKey: ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey),
		TokenHash: HashToken(ProxyToken(seed))}
	return a, seed, nil
}
