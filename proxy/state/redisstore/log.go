package redisstore

import "go.uber.org/zap"

// Log field names (const, shared with the rest of airlock's logs).
const (
	logFieldMode    = "mode"
	logFieldError   = "error"
	logFieldOp      = "op"
	logFieldReplica = "replica"
)

func zapMode(m Mode) zap.Field   { return zap.String(logFieldMode, m.String()) }
func zapErr(err error) zap.Field { return zap.String(logFieldError, err.Error()) }
