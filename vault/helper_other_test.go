//go:build !linux

package vault

import "fmt"

// runHelper: the child-process fault tests are Linux only.
func runHelper(mode string) int {
	fmt.Println("helper mode", mode, "is only supported on linux")
	return 2
}
