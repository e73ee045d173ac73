package main

import (
	"net/url"
	"os"

	"go.uber.org/zap"

	"github.com/airlock/airlock/cmd/internal/stack"
	"github.com/airlock/airlock/proxy/state/redisstore"
)

// fleetFlags put `airlock serve` into fleet mode: state shared through
// Redis with the other replicas (README "Fleet mode").
type fleetFlags struct {
	state     string // --state; AIRLOCK_STATE keeps a password out of argv
	fromArgv  bool   // --state given on the command line
	replicaID string
	rateLimit string
	budgets   string
}

func (f *fleetFlags) register(fs *flagSet) {
	fs.Func("state", "share rate limits, OAuth2 tokens and budgets with other replicas through `URL` "+
		"(redis://[user:pass@]host:port/db, rediss://, redis+sentinel://, redis+cluster://; default $AIRLOCK_STATE, "+
		"which keeps a password out of the process list)", func(v string) error {
		f.state, f.fromArgv = v, true
		return nil
	})
	f.state = os.Getenv("AIRLOCK_STATE")
	fs.StringVar(&f.replicaID, "replica-id", envOr("AIRLOCK_REPLICA_ID", hostname()), "this replica's `NAME` in the fleet (status, audit, leases)")
	fs.StringVar(&f.rateLimit, "state-ratelimit", "fail_open", "rate limits while the --state redis is unreachable: `MODE` fail_open or fail_closed")
	fs.StringVar(&f.budgets, "state-budgets", "fail_closed", "budgets while the --state redis is unreachable: `MODE` fail_open or fail_closed")
}

// options checks the flags; nil without --state (everything local).
func (f *fleetFlags) options(log *zap.Logger) (*stack.FleetOptions, error) {
	if f.state == "" {
		return nil, nil
	}
	if _, _, err := redisstore.ParseURL(f.state); err != nil {
		return nil, withHint(usageErrorf("--state: %v", err), "use redis://[user:pass@]host:port/db, rediss://..., redis+sentinel://host:26379?master_name=NAME or redis+cluster://host:7000")
	}
	if u, err := url.Parse(f.state); err == nil && f.fromArgv {
		if _, has := u.User.Password(); has {
			log.Warn("the --state password is visible in the process list; pass the URL in AIRLOCK_STATE instead")
		}
	}
	rl, err := parseMode("--state-ratelimit", f.rateLimit)
	if err != nil {
		return nil, err
	}
	bu, err := parseMode("--state-budgets", f.budgets)
	if err != nil {
		return nil, err
	}
	return &stack.FleetOptions{URL: f.state, ReplicaID: f.replicaID, RateLimitMode: rl, BudgetMode: bu}, nil
}

func parseMode(flag, v string) (redisstore.Mode, error) {
	switch v {
	case "fail_open":
		return redisstore.FailOpen, nil
	case "fail_closed":
		return redisstore.FailClosed, nil
	}
	return 0, withHint(usageErrorf("%s: unknown mode %q", flag, v), "use fail_open or fail_closed")
}

// auditReplica names this replica's audit chain in fleet mode ("" alone).
func (f *fleetFlags) auditReplica() string {
	if f.state == "" {
		return ""
	}
	return f.replicaID
}
