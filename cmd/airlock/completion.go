package main

import (
	"flag"
	"fmt"
	"strings"
)

func completionCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		var script string
		switch args[0] {
		case "bash":
			script = bashCompletion(g.table)
		case "zsh":
			script = "#compdef airlock\n\nautoload -U +X bashcompinit && bashcompinit\n" + bashCompletion(g.table)
		case "fish":
			script = fishCompletion(g.table)
		default:
			return withHint(usageErrorf("completion: unknown shell %q", args[0]), "want bash, zsh or fish")
		}
		_, err := fmt.Fprint(Stdout, script)
		return err
	}
}

// bashCompletion completes the command, the sub-commands of a group (at
// any depth: `source add <TAB>`), a leaf's flags after "-", then file
// names. Global flags before the command are skipped.
func bashCompletion(table []*command) string {
	var b strings.Builder
	b.WriteString(`# airlock bash completion: source <(airlock completion bash)
_airlock() {
	local cur i next path="" words="" known
	cur="${COMP_WORDS[COMP_CWORD]}"
`)
	var known []string
	walkTable(table, nil, func(path []string, c *command) { known = append(known, strings.Join(path, " ")) })
	fmt.Fprintf(&b, "\tknown=%q\n", "|"+strings.Join(known, "|")+"|")
	b.WriteString(`	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--home | --passphrase-file) [[ -z "$path" ]] && ((i++)) ;;
		-*) ;;
		*)
			next="${path:+$path }${COMP_WORDS[i]}"
			[[ "$known" == *"|$next|"* ]] && path="$next"
			;;
		esac
	done
	case "$path" in
`)
	fmt.Fprintf(&b, "\t\"\") words=%q ;;\n", names(table, " "))
	walkTable(table, nil, func(path []string, c *command) {
		words := names(c.sub, " ")
		if c.sub == nil {
			words = flagNames(c, path)
		}
		if words != "" {
			fmt.Fprintf(&b, "\t%q) words=%q ;;\n", strings.Join(path, " "), words)
		}
	})
	b.WriteString(`	esac
	if [[ -n "$words" && ( "$cur" == -* || "$words" != -* ) ]]; then
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
		[[ ${#COMPREPLY[@]} -gt 0 || "$cur" == -* ]] && return
	fi
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _airlock airlock
`)
	return b.String()
}

// walkTable calls fn for every command of table, groups and leaves, with
// its path of names.
func walkTable(table []*command, path []string, fn func(path []string, c *command)) {
	for _, c := range table {
		p := append(append([]string{}, path...), c.name)
		fn(p, c)
		walkTable(c.sub, p, fn)
	}
}

// flagNames is "--a --b" for leaf c's flags.
func flagNames(c *command, path []string) string {
	fs, _ := c.flags(&globals{}, "airlock "+strings.Join(path, " "))
	var n []string
	fs.VisitAll(func(f *flag.Flag) { n = append(n, "--"+f.Name) })
	return strings.Join(n, " ")
}

// fishCompletion lists commands with their summaries, and sub-commands
// after their group (at any depth).
func fishCompletion(table []*command) string {
	var b strings.Builder
	b.WriteString("# airlock fish completion: airlock completion fish | source\ncomplete -c airlock -f\n")
	for _, c := range table {
		fmt.Fprintf(&b, "complete -c airlock -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
	}
	walkTable(table, nil, func(path []string, c *command) {
		if c.sub == nil {
			return
		}
		var cond []string
		for _, name := range path {
			cond = append(cond, "__fish_seen_subcommand_from "+name)
		}
		cond = append(cond, "not __fish_seen_subcommand_from "+names(c.sub, " "))
		for _, s := range c.sub {
			fmt.Fprintf(&b, "complete -c airlock -n '%s' -a %s -d %s\n", strings.Join(cond, "; and "), s.name, fishQuote(s.summary))
		}
	})
	return b.String()
}
