//go:build !unix

package source

import "os/exec"

// killGroupOnCancel: without process groups only the command itself is
// killed at the timeout (WaitDelay still bounds the wait for its pipes).
func killGroupOnCancel(*exec.Cmd) {}
