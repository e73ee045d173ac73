// Package redisstore keeps airlock's shared state in Redis so several
// `airlock serve` replicas behave as one proxy (fleet mode, `serve --state
// redis://...`): rate-limit buckets, budget counters and reservations,
// approval queue and decisions, the OAuth2 token cache with its refresh
// lease and rotated refresh tokens, revocation events and fleet membership.
//
// Every read-modify-write is one Lua script, so it is atomic in Redis no
// matter how many replicas call it at once; time inside the scripts comes
// from the Redis server (TIME), so replicas' clocks do not matter. Keys of
// one logical object share a hash tag ({...}) so the scripts also run on
// Redis Cluster.
//
// # Failure modes
//
// Every error caused by Redis being unreachable (or answering with an
// error) wraps [ErrUnavailable], is counted in
// airlock_state_errors_total{op} and is remembered for [Store.Health].
// The client reconnects by itself; nothing needs a restart.
//
//	concern     when Redis is unreachable
//	ratelimit   Options.RateLimitMode: FailOpen (default) admits, FailClosed refuses
//	budgets     Options.BudgetMode: FailClosed (default) refuses, FailOpen admits
//	            with a local (unshared, unrecorded) reservation
//	approvals   fail closed: Pend/Decide/Wait return ErrUnavailable, the caller
//	            refuses the request; remembered approvals read as "not remembered"
//	oauth2      Token returns ErrUnavailable; the caller may refresh locally only
//	            when the credential's refresh token does not rotate
//	revocation  Publish returns ErrUnavailable; readers follow a stream and
//	            catch up from their last entry when Redis is back
//	fleet       heartbeats fail and are counted; Replicas returns ErrUnavailable
//
// Allow and Reserve apply the mode themselves and still return the error,
// so the caller logs it: errors.Is(err, ErrUnavailable) tells it happened.
//
// # Secrets
//
// OAuth2 access and refresh tokens are sealed with XChaCha20-Poly1305
// under a key the caller supplies (derived from the vault's data key), the
// credential's name as associated data. Nothing else stored is secret:
// keys hold agent, rule, budget and credential names only.
package redisstore
