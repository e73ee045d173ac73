package main

import (
	"errors"
	"fmt"
)

// errHelpShown reports that usage was printed on request (-h, help): exit 0.
var errHelpShown = errors.New("help shown")

// hintError carries a hint saying what to do next (after age's
// errorWithHint).
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches a hint to err. A nil err stays nil.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// hintOf returns the outermost hint in err's chain, or "".
func hintOf(err error) string {
	var he *hintError
	if errors.As(err, &he) {
		return he.hint
	}
	return ""
}

// usageErr is a usage or configuration mistake: exit code 2.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

// usageError returns an error that exits with code 2.
func usageError(msg string) error { return &usageErr{msg: msg} }

// usageErrorf is usageError with formatting.
func usageErrorf(format string, a ...any) error { return &usageErr{msg: fmt.Sprintf(format, a...)} }

// exitCodeError ends the program silently with code (`airlock run` passing
// its child's exit status through).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// codedError is an error printed as usual that exits with its own code
// (`airlock run`: 127 command not found, 126 not executable).
type codedError struct {
	err  error
	code int
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// withExitCode makes err exit with code after it is printed.
func withExitCode(err error, code int) error { return &codedError{err: err, code: code} }
