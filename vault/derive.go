package vault

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// DeriveKey returns 32 bytes derived from the vault's data key for one
// purpose (HKDF-SHA256, label as info), so other stores (the fleet's
// Redis) can seal with a key that only holders of the vault have, without
// the data key itself leaving the package. Different labels give
// independent keys.
func (v *Vault) DeriveKey(label string) ([]byte, error) {
	if label == "" {
		return nil, fmt.Errorf("derive key from the vault: empty label")
	}
	return hkdf.Key(sha256.New, v.key, nil, "airlock vault derived key: "+label, 32)
}
