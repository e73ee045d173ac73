package main

import (
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

// bashCompletion completes the command, then the sub-command of a group,
// then file names. Global flags before the command are skipped.
func bashCompletion(table []*command) string {
	var b strings.Builder
	b.WriteString(`# airlock bash completion: source <(airlock completion bash)
_airlock() {
	local cur i cmd=""
	cur="${COMP_WORDS[COMP_CWORD]}"
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--home | --passphrase-file) ((i++)) ;;
		-*) ;;
		*) cmd="${COMP_WORDS[i]}"; break ;;
		esac
	done
	if [[ -z "$cmd" ]]; then
		COMPREPLY=($(compgen -W "` + names(table, " ") + `" -- "$cur"))
		return
	fi
	local subs=""
	case "$cmd" in
`)
	for _, c := range table {
		if c.sub != nil {
			fmt.Fprintf(&b, "\t%s) subs=%q ;;\n", c.name, names(c.sub, " "))
		}
	}
	b.WriteString(`	esac
	if [[ -n "$subs" && $i -eq $((COMP_CWORD - 1)) ]]; then
		COMPREPLY=($(compgen -W "$subs" -- "$cur"))
		return
	fi
	COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _airlock airlock
`)
	return b.String()
}

// fishCompletion lists commands with their summaries, and sub-commands
// after their group.
func fishCompletion(table []*command) string {
	var b strings.Builder
	b.WriteString("# airlock fish completion: airlock completion fish | source\ncomplete -c airlock -f\n")
	for _, c := range table {
		fmt.Fprintf(&b, "complete -c airlock -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
		for _, s := range c.sub {
			fmt.Fprintf(&b, "complete -c airlock -n '__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s' -a %s -d %s\n",
				c.name, names(c.sub, " "), s.name, fishQuote(s.summary))
		}
	}
	return b.String()
}
