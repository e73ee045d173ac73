// Package testkit is what the module's tests share and nothing else
// imports (cmd/internal/deptest checks that no non-test package does):
//
//   - [Main] builds a command once per test binary, with -race when the
//     test binary has it, for every subprocess test of the package;
//   - [GORACE] is the environment entry that stops a -race subprocess from
//     sleeping 1 s at every exit;
//   - [WaitFor] and [WaitUntil] poll a condition to a deadline, so no test
//     sleeps.
//
// It lives under proxy/ rather than in an internal/ directory because
// both cmd/... and proxy/... tests import it (an internal package under
// either tree is invisible to the other), and the module's top level is
// fixed.
package testkit
