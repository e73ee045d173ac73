package vault

import (
	"fmt"

	"golang.org/x/crypto/argon2"
)

// KDFParams are the Argon2id parameters recorded in the header.
type KDFParams struct {
	MemoryKiB   uint32
	Time        uint32
	Parallelism uint8
}

// DefaultKDF is used by Create unless overridden: 64 MiB, 3 passes, 4 lanes.
var DefaultKDF = KDFParams{MemoryKiB: 64 * 1024, Time: 3, Parallelism: 4}

// FastKDF is for tests only (AIRLOCK_TEST_FAST_KDF=1 in the CLI): the
// smallest parameters Open accepts.
var FastKDF = KDFParams{MemoryKiB: 8 * 1024, Time: 1, Parallelism: 1}

// Bounds enforced on every header before Argon2 runs, so a hostile file
// cannot make Open allocate gigabytes or spin for minutes.
const (
	kdfArgon2id     = "argon2id"
	minMemoryKiB    = 8 * 1024
	maxMemoryKiB    = 1024 * 1024
	maxTime         = 16
	maxParallelism  = 16
	saltSize        = 16
	dataKeySize     = 32
	wrappedDataSize = dataKeySize + 16 // key + Poly1305 tag
)

// validate checks p against the bounds above.
func (p KDFParams) validate() error {
	switch {
	case p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside [%d, %d]", p.MemoryKiB, minMemoryKiB, maxMemoryKiB)
	case p.Time == 0 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d outside [1, %d]", p.Time, maxTime)
	case p.Parallelism == 0 || p.Parallelism > maxParallelism:
		return fmt.Errorf("argon2id parallelism %d outside [1, %d]", p.Parallelism, maxParallelism)
	}
	return nil
}

// deriveKEK runs Argon2id. Callers validate p first.
func (p KDFParams) deriveKEK(passphrase, salt []byte) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Parallelism, dataKeySize)
}
