package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// leasePoll is how often a replica waiting on another's refresh re-reads
// the token, in case the pub/sub message was lost.
const leasePoll = 100 * time.Millisecond

// Token is one credential's OAuth2 state shared by the fleet.
type Token struct {
	AccessToken  string    `json:"a,omitempty"`
	RefreshToken string    `json:"r,omitempty"`
	Expiry       time.Time `json:"e"`
	// Version grows by one at every store; the newest wins.
	Version int64 `json:"-"`
}

// String hides the tokens.
func (t Token) String() string {
	return "oauth2 token v" + strconv.FormatInt(t.Version, 10) + " [REDACTED]"
}

// GoString hides the tokens.
func (t Token) GoString() string { return t.String() }

// RefreshFunc fetches a new token given the fleet's current one (zero
// Version and empty tokens when the fleet has none yet: use the vault's
// refresh token). A returned empty RefreshToken keeps current's.
type RefreshFunc func(ctx context.Context, current Token) (Token, error)

// tokenFlight merges one Store's concurrent Token calls per credential.
type tokenFlight struct{ g singleflight.Group }

func newTokenFlight() *tokenFlight { return &tokenFlight{} }

func (s *Store) tokKey(cred string) string   { return s.key("oauth2", tag(cred), "tok") }
func (s *Store) leaseKey(cred string) string { return s.key("oauth2", tag(cred), "lease") }

// storeTokenScript writes a sealed record iff the stored version is
// ARGV[1] (compare-and-set), making it version ARGV[1]+1.
//
//	KEYS  1 token hash {v, blob}
//	ARGV  1 expected version, 2 sealed blob
//
// Returns the stored version after the call: expected+1 on success.
var storeTokenScript = redis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return v end
redis.call('HSET', KEYS[1], 'v', v + 1, 'blob', ARGV[2])
return v + 1
`)

// unlockScript deletes the lease iff this replica still owns it.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Token returns cred's access token valid for at least minValid. If the
// fleet's token is older, exactly one replica (the holder of a lease of
// Options.LeaseTTL) calls refresh and stores the result, sealed, as the
// next version; the others wait for it (pub/sub, polled every 100 ms) and
// read it (a token refreshed meanwhile is taken even if it is valid for
// less than minValid: it is the freshest there is). Concurrent calls on one Store share one attempt. A refresh
// error reaches the lease holder's callers; waiters then try themselves.
//
// Redis unreachable: ErrUnavailable; the caller may refresh on its own
// only when cred's refresh token does not rotate.
func (s *Store) Token(ctx context.Context, cred string, minValid time.Duration, refresh RefreshFunc) (Token, error) {
	if len(s.opts.TokenKey) != 32 {
		return Token{}, ErrNoTokenKey
	}
	ch := s.tokens.g.DoChan(cred, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.LeaseTTL+5*time.Second)
		defer cancel()
		return s.token(ctx, cred, minValid, refresh)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

func (s *Store) token(ctx context.Context, cred string, minValid time.Duration, refresh RefreshFunc) (Token, error) {
	signal, stop := s.subs.watch(s.chanOAuth2(), cred)
	defer stop()
	seen := int64(-1)
	for {
		cur, err := s.CachedToken(ctx, cred)
		if err != nil {
			return Token{}, err
		}
		if cur.AccessToken != "" && time.Until(cur.Expiry) > minValid {
			return cur, nil
		}
		// A token stored by another replica since we started waiting is
		// the freshest the provider gives: take it unless expired.
		if seen >= 0 && cur.Version > seen && cur.AccessToken != "" && time.Now().Before(cur.Expiry) {
			return cur, nil
		}
		if seen < 0 {
			seen = cur.Version
		}
		owner := s.opts.ReplicaID + "/" + randomID()
		got, err := s.rdb.SetNX(ctx, s.leaseKey(cred), owner, s.opts.LeaseTTL).Result()
		if err = s.fail("oauth2_lease", err); err != nil {
			return Token{}, err
		}
		if got {
			return s.refreshHolding(ctx, cred, owner, cur.Version, minValid, refresh)
		}
		select {
		case <-ctx.Done():
			return Token{}, fmt.Errorf("oauth2 %s: waiting for another replica's refresh: %w", cred, ctx.Err())
		case <-signal:
		case <-time.After(leasePoll):
		}
	}
}

// refreshHolding runs refresh while holding the lease, stores the result
// and wakes the waiters.
func (s *Store) refreshHolding(ctx context.Context, cred, owner string, seen int64, minValid time.Duration, refresh RefreshFunc) (Token, error) {
	defer func() {
		_ = s.fail("oauth2_unlock", unlockScript.Run(context.WithoutCancel(ctx), s.rdb, []string{s.leaseKey(cred)}, owner).Err())
		_ = s.fail("oauth2_publish", s.rdb.Publish(context.WithoutCancel(ctx), s.chanOAuth2(), cred).Err())
	}()
	cur, err := s.CachedToken(ctx, cred) // another replica may have just stored one
	if err != nil {
		return Token{}, err
	}
	if cur.AccessToken != "" && (time.Until(cur.Expiry) > minValid || cur.Version > seen && time.Now().Before(cur.Expiry)) {
		return cur, nil
	}
	next, err := refresh(ctx, cur)
	if err != nil {
		return Token{}, fmt.Errorf("oauth2 %s: refresh: %w", cred, err)
	}
	if next.RefreshToken == "" {
		next.RefreshToken = cur.RefreshToken
	}
	return s.storeToken(ctx, cred, cur.Version, next)
}

// storeToken writes tok as the version after base. If another writer got
// there first (a lease that expired mid-refresh), tok is still the one the
// provider issued last, so it is stored on top of theirs.
func (s *Store) storeToken(ctx context.Context, cred string, base int64, tok Token) (Token, error) {
	plain, err := json.Marshal(tok)
	if err != nil {
		return Token{}, fmt.Errorf("encode oauth2 token: %w", err)
	}
	for range 5 {
		blob, err := seal(s.opts.TokenKey, cred, base+1, plain)
		if err != nil {
			return Token{}, err
		}
		v, err := storeTokenScript.Run(ctx, s.rdb, []string{s.tokKey(cred)}, base, blob).Int64()
		if err = s.fail("oauth2_store", err); err != nil {
			return Token{}, err
		}
		if v == base+1 {
			tok.Version = v
			return tok, nil
		}
		s.opts.Log.Warn("oauth2 token stored concurrently, writing newer version",
			zap.String("credential", cred), zap.String(logFieldReplica, s.opts.ReplicaID))
		base = v
	}
	return Token{}, fmt.Errorf("oauth2 %s: token version kept moving, not stored", cred)
}

// StoreToken writes tok as cred's newest token (e.g. seeding the fleet
// from the vault after `airlock vault set`). It returns the new version.
func (s *Store) StoreToken(ctx context.Context, cred string, tok Token) (Token, error) {
	if len(s.opts.TokenKey) != 32 {
		return Token{}, ErrNoTokenKey
	}
	cur, err := s.rawVersion(ctx, cred)
	if err != nil {
		return Token{}, err
	}
	t, err := s.storeToken(ctx, cred, cur, tok)
	if err == nil {
		_ = s.fail("oauth2_publish", s.rdb.Publish(ctx, s.chanOAuth2(), cred).Err())
	}
	return t, err
}

func (s *Store) rawVersion(ctx context.Context, cred string) (int64, error) {
	v, err := s.rdb.HGet(ctx, s.tokKey(cred), "v").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, s.fail("oauth2_read", err)
}

// CachedToken returns cred's newest token in Redis (zero Token if none).
// A record that does not open under TokenKey is ErrBadRecord.
func (s *Store) CachedToken(ctx context.Context, cred string) (Token, error) {
	if len(s.opts.TokenKey) != 32 {
		return Token{}, ErrNoTokenKey
	}
	m, err := s.rdb.HGetAll(ctx, s.tokKey(cred)).Result()
	if err = s.fail("oauth2_read", err); err != nil {
		return Token{}, err
	}
	if m["blob"] == "" {
		return Token{}, nil
	}
	return openRecord(s.opts.TokenKey, cred, m["v"], []byte(m["blob"]))
}

// openRecord decodes one stored record: version text and sealed blob.
func openRecord(key []byte, cred, version string, blob []byte) (Token, error) {
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil || v <= 0 {
		return Token{}, fmt.Errorf("oauth2 %s: %w (bad version)", cred, ErrBadRecord)
	}
	plain, err := open(key, cred, v, blob)
	if err != nil {
		return Token{}, fmt.Errorf("oauth2 %s: %w (was the vault's data key changed? ForgetToken re-seeds from the vault)", cred, err)
	}
	var t Token
	if err := json.Unmarshal(plain, &t); err != nil {
		return Token{}, fmt.Errorf("oauth2 %s: %w (bad json)", cred, ErrBadRecord)
	}
	t.Version = v
	return t, nil
}

// ForgetToken drops cred's shared token (the vault's credential changed).
func (s *Store) ForgetToken(ctx context.Context, cred string) error {
	return s.fail("oauth2_forget", s.rdb.Del(ctx, s.tokKey(cred)).Err())
}
