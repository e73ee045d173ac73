//go:build !unix

package vault

import "errors"

// lockFile is not implemented off unix: saves refuse rather than risk a lost
// update.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("lock vault: file locking is only supported on unix")
}
