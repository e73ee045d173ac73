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
// usage errors (exit 2) and -h into errHelpShown (exit 0). It prints
// nothing itself: the caller prints the usage generated from it (usage.go).
type flagSet struct {
	*flag.FlagSet
	// interspersed: keep parsing flags after the first positional argument
	// (until "--"). Off for `run`, whose arguments belong to the child.
	interspersed bool
	args         []string
	// dash is how many positional arguments came before a "--" (-1: no
	// "--"): `source add exec NAME -- CMD...` finds its command with it.
	dash int
}

// newFlagSet returns a flag set for the command path ("airlock vault set").
func newFlagSet(name string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), interspersed: true}
	fs.SetOutput(io.Discard)
	fs.FlagSet.Usage = func() {}
	return fs
}

// Parse parses args; positional arguments are then in Args.
func (fs *flagSet) Parse(args []string) error {
	fs.args, fs.dash = nil, -1
	for {
		err := fs.FlagSet.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		if err != nil {
			return usageError(err.Error())
		}
		rest := fs.FlagSet.Args()
		if len(rest) == 0 {
			return nil
		}
		// flag.Parse consumed a "--" iff the token before rest is "--".
		dashed := len(args) > len(rest) && args[len(args)-len(rest)-1] == "--"
		if !fs.interspersed || dashed {
			if dashed {
				fs.dash = len(fs.args)
			}
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
