package vault

import (
	"os"
	"testing"
)

// helperEnv selects a helper mode: the test binary re-executes itself as a
// child process (see helper_linux_test.go) for crash, concurrency and
// disk-full tests.
const helperEnv = "AIRLOCK_VAULT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}
