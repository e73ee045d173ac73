package redisstore

import (
	"os"
	"testing"

	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	LibraryLogsTo(zap.NewNop()) // the outage tests make go-redis log every failed dial
	os.Exit(m.Run())
}
