package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Log field names (const, shared with the rest of airlock's logs).
const (
	logFieldMode    = "mode"
	logFieldError   = "error"
	logFieldOp      = "op"
	logFieldReplica = "replica"
	logFieldDetail  = "detail"
)

func zapMode(m Mode) zap.Field   { return zap.String(logFieldMode, m.String()) }
func zapErr(err error) zap.Field { return zap.String(logFieldError, err.Error()) }

// LibraryLogsTo sends go-redis' own log lines (dial failures, pool
// warnings) to log at Warn as zap lines instead of plain text on stderr.
// It is process-wide (go-redis has one logger): call it once in serve.
// The lines carry addresses and server messages, never passwords.
func LibraryLogsTo(log *zap.Logger) { redis.SetLogger(zapPrintf{log}) }

type zapPrintf struct{ l *zap.Logger }

func (z zapPrintf) Printf(_ context.Context, format string, v ...any) {
	z.l.Warn("redis client", zap.String(logFieldDetail, fmt.Sprintf(format, v...)))
}
