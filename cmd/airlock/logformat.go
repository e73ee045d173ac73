package main

import (
	"io"
)

// resolveLogFormat turns --log-format auto into console when w (stderr)
// is a terminal, a person watching, and into json otherwise (a service
// manager or a log pipeline).
func (o *serveOptions) resolveLogFormat(w io.Writer) error {
	switch o.logFormat {
	case "json", "console":
		return nil
	case "auto", "":
		o.logFormat = "json"
		if isTerminal(w) {
			o.logFormat = "console"
		}
		return nil
	}
	return withHint(usageErrorf("--log-format %q: want json, console or auto", o.logFormat), "usage: --log-format json|console|auto")
}
