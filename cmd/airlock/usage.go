package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Usage text, generated from the command table and each command's flag
// set: there is no second copy to drift.

// maxInlineFlags is how many flags a synopsis spells out; more show as
// [flags] (serve has a dozen), listed under "flags:" in its help.
const maxInlineFlags = 4

// synopsis is the one-line usage of leaf c: "airlock vault set PATH
// [--expires WHEN] [--username U]".
func (c *command) synopsis(fs *flagSet) string {
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, flagSynopsis(f)) })
	if len(flags) > maxInlineFlags {
		flags = []string{"[flags]"}
	}
	parts := []string{fs.Name()}
	if before, after, dashed := strings.Cut(c.args, "--"); fs.interspersed && dashed {
		// Flags go before "--": what follows belongs to the command run.
		parts = append(append(append(parts, before), flags...), "--"+after)
	} else if fs.interspersed {
		parts = append(append(parts, c.args), flags...)
	} else {
		parts = append(append(parts, flags...), c.args)
	}
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// flagSynopsis is "[--name VALUE]", "[--name]" for a bool, "--name VALUE"
// for a flag whose usage starts with "(required)".
func flagSynopsis(f *flag.Flag) string {
	name, usage := flag.UnquoteUsage(f)
	s := "--" + f.Name
	if !isBoolFlag(f) {
		switch name {
		case "string", "value", "":
			name = "VALUE"
		case "duration":
			name = "DURATION"
		case "int":
			name = "N"
		}
		s += " " + name
	}
	if strings.HasPrefix(usage, "(required)") {
		return s
	}
	return "[" + s + "]"
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// checkArgs checks the number of positional arguments against c.args: a
// word is required, [WORD] optional, WORD... or [WORD...] repeatable.
func (c *command) checkArgs(args []string) error {
	min, max := argCounts(c.args)
	switch {
	case len(args) < min:
		return usageErrorf("%s: missing argument", c.name)
	case max >= 0 && len(args) > max:
		return usageErrorf("%s: unexpected argument %q", c.name, args[max])
	}
	return nil
}

// argCounts reads the minimum and maximum (-1: any) number of positional
// arguments from a synopsis such as "PATH", "[FILE]", "-- CMD [ARGS...]".
func argCounts(synopsis string) (min, max int) {
	for _, w := range strings.Fields(synopsis) {
		switch {
		case w == "--":
		case strings.HasSuffix(w, "...") || strings.HasSuffix(w, "...]"):
			if !strings.HasPrefix(w, "[") {
				min++
			}
			max = -1
		case strings.HasPrefix(w, "["):
			if max >= 0 {
				max++
			}
		default:
			min++
			if max >= 0 {
				max++
			}
		}
	}
	return min, max
}

// printLeafUsage is `airlock CMD --help`: synopsis, summary, flags.
func printLeafUsage(w io.Writer, c *command, fs *flagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s\n", c.synopsis(fs), c.summary)
	var defaults strings.Builder
	fs.SetOutput(&defaults)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if defaults.Len() > 0 {
		fmt.Fprintf(&b, "\nflags:\n%s", defaults.String())
	}
	fmt.Fprint(w, b.String())
}

// printGroupUsage lists the sub-commands of a group ("airlock vault").
func printGroupUsage(w io.Writer, g *globals, path string, table []*command) {
	fmt.Fprintf(w, "usage: %s COMMAND [ARGS...]\n", path)
	printCommandList(w, g, path, table)
}

// printTopUsage is `airlock --help`, on stdout.
func printTopUsage(g *globals) { printTopUsageTo(g, Stdout) }

func printTopUsageTo(g *globals, w io.Writer) {
	var b strings.Builder
	b.WriteString(usageHeader)
	printCommandList(&b, g, "airlock", g.table)
	b.WriteString(usageFooter)
	fmt.Fprint(w, b.String())
}

// printCommandList writes "commands:" and one synopsis + summary line per
// command; a group shows its sub-commands' names.
func printCommandList(w io.Writer, g *globals, path string, table []*command) {
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, c := range table {
		syn := path + " " + c.name + " " + names(c.sub, "|")
		if c.sub == nil {
			fs, _ := c.flags(g, path+" "+c.name)
			syn = c.synopsis(fs)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(syn), c.summary)
	}
	_ = tw.Flush()
}

// names joins the names of table's commands with sep.
func names(table []*command, sep string) string {
	n := make([]string, len(table))
	for i, c := range table {
		n[i] = c.name
	}
	return strings.Join(n, sep)
}
