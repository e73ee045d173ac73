package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// flagSet is a stdlib flag.FlagSet that accepts flags after positional
// arguments too (`vault set PATH --expires 30d`), turns parse errors into
// usage errors (exit 2) and -h into errHelpShown (exit 0).
type flagSet struct {
	*flag.FlagSet
	usage string
	// interspersed: keep parsing flags after the first positional argument
	// (until "--"). Off for `run`, whose arguments belong to the child.
	interspersed bool
	args         []string
}

// newFlagSet returns a flag set for the command name with the one-line
// usage synopsis shown by -h and in hints.
func newFlagSet(name, usage string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), usage: usage, interspersed: true}
	fs.SetOutput(io.Discard)
	fs.FlagSet.Usage = func() {}
	return fs
}

// Parse parses args; positional arguments are then in Args.
func (fs *flagSet) Parse(args []string) error {
	fs.args = nil
	for {
		err := fs.FlagSet.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage()
			return errHelpShown
		}
		if err != nil {
			return withHint(usageError(err.Error()), "usage: "+fs.usage)
		}
		rest := fs.FlagSet.Args()
		if len(rest) == 0 {
			return nil
		}
		// flag.Parse consumed a "--" iff the token before rest is "--".
		if !fs.interspersed || (len(args) > len(rest) && args[len(args)-len(rest)-1] == "--") {
			fs.args = append(fs.args, rest...)
			return nil
		}
		fs.args = append(fs.args, rest[0])
		args = rest[1:]
	}
}

// Args returns the positional arguments.
func (fs *flagSet) Args() []string { return fs.args }

// NArg is the number of positional arguments.
func (fs *flagSet) NArg() int { return len(fs.args) }

// Arg returns positional argument i, or "".
func (fs *flagSet) Arg(i int) string {
	if i < 0 || i >= len(fs.args) {
		return ""
	}
	return fs.args[i]
}

// wantArgs checks the number of positional arguments.
func (fs *flagSet) wantArgs(min, max int) error {
	n := len(fs.args)
	switch {
	case n < min:
		return withHint(usageErrorf("%s: missing argument", fs.Name()), "usage: "+fs.usage)
	case max >= 0 && n > max:
		return withHint(usageErrorf("%s: unexpected argument %q", fs.Name(), fs.args[max]), "usage: "+fs.usage)
	}
	return nil
}

// parseNone parses args, which must hold no positional argument.
func (fs *flagSet) parseNone(args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return fs.wantArgs(0, 0)
}

// parseOne parses args, which must hold exactly one positional argument,
// and returns it after check (nil: no check) accepts it.
func (fs *flagSet) parseOne(args []string, check func(string) error) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if err := fs.wantArgs(1, 1); err != nil {
		return "", err
	}
	arg := fs.Arg(0)
	if check == nil {
		return arg, nil
	}
	return arg, check(arg)
}

func (fs *flagSet) printUsage() {
	fmt.Fprintf(Stderr, "usage: %s\n", fs.usage)
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if b.Len() > 0 {
		fmt.Fprintf(Stderr, "\nflags:\n%s", b.String())
	}
}

// mapFlag collects repeated k=v flags (--meta k=v).
type mapFlag map[string]string

func (m mapFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (m mapFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value")
	}
	m[k] = v
	return nil
}
