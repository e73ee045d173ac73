// Command airlock is the credential-injecting egress proxy for AI agents and
// the tool that manages its home directory: the encrypted vault, the local
// CA, the policy and the agents' keys.
//
// # Exit codes
//
// 0 success, 1 runtime failure, 2 usage or configuration error. A command
// run with `airlock run` passes its own exit code through; one that cannot
// start exits 127 (not found) or 126 (not executable), as in a shell.
//
// # Commands
//
// The command table is in commands.go; its comment says how to add one.
//
// # Output
//
// Data goes to stdout, diagnostics to stderr as
//
//	airlock: error: <what went wrong>
//	airlock: hint: <what to do next>
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// version is overridden at build time with
// -ldflags "-X main.version=1.2.3".
var version = "0.1.0-dev"

// Standard streams, package variables so tests can capture them.
var (
	Stdout io.Writer = os.Stdout
	Stderr io.Writer = os.Stderr
	Stdin  io.Reader = os.Stdin
)

func main() {
	os.Exit(runCLI(os.Args[1:]))
}

// runCLI runs one airlock invocation and returns its exit code. It never
// lets a panic reach the user.
func runCLI(args []string) (code int) {
	defer func() {
		if r := recover(); r != nil {
			// The panic value is not printed: it could hold a secret.
			printError(withHint(errors.New("internal error"),
				"this is a bug in airlock; please report it with the command you ran"))
			code = exitFailure
		}
	}()
	if err := readInheritedPassphrase(); err != nil {
		return exitCode(err)
	}
	return exitCode(dispatch(args))
}

// exitCode prints err (when it has something to say) and maps it to an
// exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	if errors.Is(err, errHelpShown) {
		return exitOK
	}
	printError(err)
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	var ue *usageErr
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

func printError(err error) {
	fmt.Fprintf(Stderr, "airlock: error: %v\n", err)
	if h := hintOf(err); h != "" {
		fmt.Fprintf(Stderr, "airlock: hint: %s\n", h)
	}
}
