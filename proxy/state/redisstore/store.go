package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// ErrUnavailable wraps every error caused by Redis: unreachable, timed
// out, or answering with an error. Callers branch on it to apply the
// concern's failure mode (see the package documentation).
var ErrUnavailable = errors.New("redis state store unavailable")

// ErrBadURL is returned by [ParseURL] for a --state value it cannot use.
var ErrBadURL = errors.New("bad redis state url")

// Mode is what a concern does when Redis is unreachable.
type Mode int

const (
	// FailOpen admits the request (counted, logged by the caller).
	FailOpen Mode = iota + 1
	// FailClosed refuses it.
	FailClosed
)

// String returns fail_open or fail_closed, the policy/flag spelling.
func (m Mode) String() string {
	if m == FailClosed {
		return "fail_closed"
	}
	return "fail_open"
}

// Options configure a [Store]. Zero fields take the documented defaults.
type Options struct {
	// ReplicaID names this replica in fleet membership, lease owners and
	// events. Default: a random id.
	ReplicaID string
	// Prefix starts every key. Default "airlock:".
	Prefix string
	// TokenKey seals OAuth2 tokens (32 bytes, e.g. derived from the vault's
	// data key with HKDF). Required for the OAuth2 methods.
	TokenKey []byte
	// RateLimitMode default FailOpen; BudgetMode default FailClosed.
	RateLimitMode, BudgetMode Mode
	// ReservationTTL bounds how long a budget reservation lives if its
	// replica dies before Commit/Release. Default 15 minutes.
	ReservationTTL time.Duration
	// LeaseTTL bounds one OAuth2 refresh: a replica that dies holding the
	// lease frees it after this. Default 30 seconds.
	LeaseTTL time.Duration
	// Batch sends concurrent rate-limit checks as one pipeline (see
	// [Store.Allow]). Default true; set NoBatch to send one call each.
	NoBatch bool
	// Registerer receives airlock_state_errors_total. Nil: not registered.
	Registerer prometheus.Registerer
	// Log receives one line per fallback. Nil: no logging.
	Log *zap.Logger
}

// Store is airlock's shared state in one Redis (or Sentinel-managed
// primary, or Cluster). It is safe for concurrent use; one Store per
// replica, each with its own connection pool.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
	addr string // for Health, no credentials
	// cluster: keys of different objects may live on different nodes, so
	// rate-limit batches go as pipelines instead of one script.
	cluster bool

	errs    *prometheus.CounterVec
	batcher *batcher
	subs    *subscriber
	tokens  *tokenFlight

	mu        sync.Mutex // guards lastErr, lastErrAt, lastOKAt, errCount
	lastErr   string
	lastErrAt time.Time
	lastOKAt  time.Time
	errCount  map[string]uint64
}

// Open connects to the Redis named by rawURL (see [ParseURL]), checks it
// answers within ctx, and loads the scripts. A Redis that does not answer
// yet is an error; once open, the Store reconnects on its own.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	uo, addr, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := newStore(redis.NewUniversalClient(uo), addr, opts)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open redis state at %s: %w (check --state and that redis answers)", addr, err)
	}
	return s, nil
}

func newStore(rdb redis.UniversalClient, addr string, opts Options) *Store {
	if opts.ReplicaID == "" {
		opts.ReplicaID = randomID()
	}
	if opts.Prefix == "" {
		opts.Prefix = "airlock:"
	}
	if opts.RateLimitMode == 0 {
		opts.RateLimitMode = FailOpen
	}
	if opts.BudgetMode == 0 {
		opts.BudgetMode = FailClosed
	}
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = 15 * time.Minute
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, opts: opts, addr: addr, cluster: cluster, errCount: map[string]uint64{}}
	s.errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airlock_state_errors_total",
		Help: "Shared state store operations that failed because Redis was unreachable or answered an error, by operation.",
	}, []string{"op"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(s.errs); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				s.errs = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	s.batcher = newBatcher(s)
	s.subs = newSubscriber(s)
	s.tokens = newTokenFlight()
	return s
}

// ReplicaID is this replica's name in the fleet.
func (s *Store) ReplicaID() string { return s.opts.ReplicaID }

// Close stops the subscriber and batcher and closes the connection pool.
func (s *Store) Close() error {
	s.subs.close()
	s.batcher.close()
	return s.rdb.Close()
}

// Ping checks Redis answers, counting a failure under op "ping".
func (s *Store) Ping(ctx context.Context) error {
	return s.fail("ping", s.rdb.Ping(ctx).Err())
}

// key joins the prefix and parts into one key.
func (s *Store) key(parts ...string) string {
	return s.opts.Prefix + strings.Join(parts, ":")
}

// tag wraps an object's name in a hash tag so all of its keys live in one
// cluster slot. Braces inside the name are replaced so they cannot move
// the tag.
func tag(name string) string {
	return "{" + strings.NewReplacer("{", "(", "}", ")").Replace(name) + "}"
}

// fail turns a Redis error into one wrapping ErrUnavailable, counts it
// under op and remembers it for Health. nil and redis.Nil pass through.
func (s *Store) fail(op string, err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		s.ok()
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err // the caller gave up: not Redis' fault
	}
	s.errs.WithLabelValues(op).Inc()
	s.mu.Lock()
	s.lastErr = redactErr(err)
	s.lastErrAt = time.Now()
	s.errCount[op]++
	s.mu.Unlock()
	return &unavailableError{op: op, err: err}
}

func (s *Store) ok() {
	s.mu.Lock()
	s.lastOKAt = time.Now()
	s.mu.Unlock()
}

// unavailableError is a Redis failure during op; it is ErrUnavailable.
type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string {
	return "redis state " + e.op + ": " + redactErr(e.err)
}

func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// redactErr is err's text; go-redis errors never carry values we sent,
// only addresses and server messages, so it is safe to log.
func redactErr(err error) string { return err.Error() }

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
