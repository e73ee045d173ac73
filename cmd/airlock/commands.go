package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

// globals are the flags given before the subcommand.
type globals struct {
	home           home
	passphraseFile string
}

// command is one entry of the dispatch table: a leaf with run, or a group
// with sub-commands.
type command struct {
	name    string
	usage   string // synopsis, without the leading "usage: "
	summary string
	run     func(g *globals, args []string) error
	sub     []*command
}

// commands is the dispatch table (a variable so tests can add entries).
var commands = []*command{
	{name: "init", usage: "airlock init", summary: "create the vault, the local CA and policy.yaml in the home", run: cmdInit},
	{name: "serve", usage: "airlock serve [--listen ADDR] [--admin ADDR|off] [--policy FILE]", summary: "run the proxy on 127.0.0.1:7600", run: cmdServe},
	{name: "demo", usage: "airlock demo", summary: "self-contained end-to-end demonstration", run: cmdDemo},
	{name: "vault", usage: "airlock vault set|list|get|rm|import-env|passwd", summary: "manage credentials", sub: vaultCommands},
	{name: "agent", usage: "airlock agent add|list|rm|rotate", summary: "manage agent identities", sub: agentCommands},
	{name: "policy", usage: "airlock policy check|explain", summary: "validate the policy, explain a decision", sub: policyCommands},
	{name: "ca", usage: "airlock ca export|install", summary: "the local CA certificate", sub: caCommands},
	{name: "audit", usage: "airlock audit verify FILE...", summary: "verify the hash chain of audit log files", sub: auditCommands},
	{name: "env", usage: "airlock env [--agent NAME] [--shell sh|fish]", summary: "print shell exports that route an agent through airlock", run: cmdEnv},
	{name: "run", usage: "airlock run [--agent NAME] -- CMD [ARGS...]", summary: "run CMD with the airlock environment", run: cmdRun},
	{name: "doctor", usage: usageDoctor, summary: "check the home, vault, policy, CA, port and shell; print a fix for each problem", run: cmdDoctor},
	{name: "version", usage: "airlock version", summary: "print the version", run: cmdVersion},
}

// help refers to the table itself, so it joins at init time.
func init() {
	commands = append(commands, &command{name: "help", usage: "airlock help [COMMAND...]", summary: "show help", run: cmdHelp})
}

const usageHeader = `airlock: a credential-injecting egress proxy for AI agents

usage: airlock [--home DIR] [--passphrase-file FILE] COMMAND [ARGS...]
`

const usageFooter = `
environment:
  AIRLOCK_HOME               home directory (default ~/.airlock; --home overrides)
  AIRLOCK_PASSPHRASE         vault passphrase (or --passphrase-file FILE, or a prompt on a terminal)
  AIRLOCK_KEY_FILE           key file that unlocks the vault without a passphrase (unattended use)
  AIRLOCK_NEW_PASSPHRASE     new passphrase for 'vault passwd'
  AIRLOCK_LISTEN             proxy address used in agent URLs (default 127.0.0.1:7600)
  AIRLOCK_ADMIN              admin address of 'serve' (default 127.0.0.1:7700)
  AIRLOCK_INSECURE_FAST_KDF  =1 makes 'init' use a weak key derivation: for tests only

'airlock help COMMAND' or 'airlock COMMAND -h' describes a command.
`

// dispatch parses the global flags and runs the subcommand.
func dispatch(args []string) error {
	g := &globals{}
	fs := newFlagSet("airlock", "airlock [--home DIR] [--passphrase-file FILE] COMMAND [ARGS...]")
	fs.interspersed = false
	homeFlag := fs.String("home", "", "home directory (default $AIRLOCK_HOME or ~/.airlock)")
	fs.StringVar(&g.passphraseFile, "passphrase-file", "", "read the vault passphrase from FILE")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, errHelpShown) {
			printUsage(commands)
		}
		return err
	}
	if fs.NArg() == 0 {
		printUsage(commands)
		return &exitCodeError{code: exitUsage}
	}
	h, err := resolveHome(*homeFlag)
	if err != nil {
		return err
	}
	g.home = h
	gflags = g
	return runCommand(g, commands, fs.Args(), "airlock")
}

// runCommand finds args[0] in table and runs it (recursing into groups).
func runCommand(g *globals, table []*command, args []string, prefix string) error {
	c := lookup(table, args[0])
	if c == nil {
		return withHint(usageErrorf("unknown command %q", strings.TrimSpace(prefix+" "+args[0])),
			"run `"+prefix+" -h` to list the commands")
	}
	if c.sub != nil {
		if len(args) < 2 {
			printUsage(c.sub)
			return &exitCodeError{code: exitUsage}
		}
		if args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
			printUsage(c.sub)
			return errHelpShown
		}
		return runCommand(g, c.sub, args[1:], prefix+" "+c.name)
	}
	err := c.run(g, args[1:])
	var ue *usageErr
	if errors.As(err, &ue) && hintOf(err) == "" {
		err = withHint(err, "usage: "+c.usage)
	}
	return err
}

func lookup(table []*command, name string) *command {
	for _, c := range table {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printUsage(table []*command) {
	if len(table) > 0 && table[0] == commands[0] {
		fmt.Fprint(Stderr, usageHeader)
	}
	fmt.Fprintln(Stderr, "\ncommands:")
	tw := tabwriter.NewWriter(Stderr, 2, 8, 2, ' ', 0)
	for _, c := range table {
		fmt.Fprintf(tw, "  %s\t%s\n", c.usage, c.summary)
	}
	_ = tw.Flush()
	if len(table) > 0 && table[0] == commands[0] {
		fmt.Fprint(Stderr, usageFooter)
	}
}

// cmdHelp prints the usage of the whole tool or of one command.
func cmdHelp(g *globals, args []string) error {
	table := commands
	for i, name := range args {
		c := lookup(table, name)
		if c == nil {
			return withHint(usageErrorf("unknown command %q", strings.Join(args[:i+1], " ")), "run `airlock help` to list the commands")
		}
		if c.sub == nil {
			fmt.Fprintf(Stderr, "usage: %s\n\n%s\n", c.usage, c.summary)
			return nil
		}
		table = c.sub
	}
	printUsage(table)
	return nil
}

func cmdVersion(g *globals, args []string) error {
	fs := newFlagSet("version", "airlock version")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	fmt.Fprintf(Stdout, "airlock %s\n", version)
	return nil
}

// resolveHome picks --home, then $AIRLOCK_HOME, then ~/.airlock, as an
// absolute path (it ends up in environment variables of other programs).
func resolveHome(flagValue string) (home, error) {
	dir := flagValue
	if dir == "" {
		dir = os.Getenv("AIRLOCK_HOME")
	}
	if dir == "" {
		uh, err := os.UserHomeDir()
		if err != nil {
			return home{}, withHint(fmt.Errorf("find home directory: %w", err), "set AIRLOCK_HOME or pass --home DIR")
		}
		dir = filepath.Join(uh, ".airlock")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return home{}, fmt.Errorf("home %s: %w", dir, err)
	}
	return home{dir: abs}, nil
}
