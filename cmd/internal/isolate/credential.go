package isolate

import (
	"context"
	"time"
)

// Credential is what an isolated run identifies with.
type Credential struct {
	Agent     string
	Token     string // proxy token (Proxy-Authorization password)
	ExpiresAt time.Time
}

// RunCredential issues one credential per run and revokes it when the run
// ends. Implementations: a fresh agent token registered with a TTL in the
// agents registry, refused by the proxy once revoked or expired.
type RunCredential interface {
	// Issue returns a credential for agent valid for at most ttl.
	Issue(ctx context.Context, agent string, ttl time.Duration) (Credential, error)
	// Revoke makes c stop working; it is called once, after CMD exits.
	Revoke(ctx context.Context, c Credential) error
}
