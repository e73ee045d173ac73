//go:build !linux

package isolate

import (
	"context"
	"fmt"
	"runtime"
)

// unsupported is ErrUnsupportedOS naming this system.
func unsupported() error { return fmt.Errorf("%w; this is %s", ErrUnsupportedOS, runtime.GOOS) }

// Run reports that isolation cannot run here.
func Run(context.Context, Options) (int, error) { return 0, unsupported() }

// Available reports that no mode runs here.
func Available(m Mode) (Mode, error) { return m, unsupported() }

// Supported reports why root mode cannot run here.
func Supported() error { return unsupported() }

// UserSupported reports why unprivileged mode cannot run here.
func UserSupported() error { return unsupported() }

// MaybeInit returns at once: no process is ever started as an init here.
func MaybeInit() {}
