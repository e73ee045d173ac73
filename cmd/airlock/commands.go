package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The command table: every subcommand of airlock, declared once, here.
//
// # Adding a command
//
// Add one entry to [commands] (or to a group's sub list):
//
//	{name: "usage", args: "[AGENT]", summary: "show token use and budgets", setup: usageCmd},
//
// and write its setup function in the file of its feature:
//
//	func usageCmd(g *globals, fs *flagSet) runFunc {
//		asJSON := fs.Bool("json", false, "print one JSON document")
//		return func(args []string) error { ... } // args: the positional arguments
//	}
//
// setup declares the flags on fs (put a `NAME` in backquotes in a flag's
// usage to name its value in the synopsis; start the usage with
// "(required) " for a flag the command cannot run without) and returns the
// function that runs the command; it must do nothing else (help calls it
// to list the flags). Nothing else is needed: the synopsis in
// `airlock help`, `airlock help CMD`, `airlock CMD --help`, the hint of a
// usage error and the shell completion scripts are generated from the
// entry and its flag set. The number of positional arguments is checked
// from args before run is called: a word is required, [WORD] optional,
// WORD... or [WORD...] repeatable; a "--" in args is shown, not counted.
var commands = []*command{
	{name: "init", summary: "create the vault, the local CA and policy.yaml in the home", setup: initCmd},
	{name: "serve", summary: "run the proxy on 127.0.0.1:7600", setup: serveCmd},
	{name: "demo", summary: "self-contained end-to-end demonstration", setup: demoCmd},
	{name: "vault", summary: "manage credentials", sub: []*command{
		{name: "set", args: "PATH", summary: "store a credential (value from stdin, or a prompt)", setup: vaultSetCmd},
		{name: "set-oauth2", args: "PATH", summary: "store an OAuth2 client (secret or refresh token from stdin, or a prompt)", setup: vaultSetOAuth2Cmd},
		{name: "set-aws", args: "PATH", summary: "store an AWS access key for SigV4 signing (secret from stdin, or a prompt)", setup: vaultSetAWSCmd},
		{name: "set-ref", args: "PATH", summary: "store a reference: the value is fetched from a source (`airlock source add`)", setup: vaultSetRefCmd},
		{name: "list", summary: "list credentials (metadata only, never values)", setup: vaultListCmd},
		{name: "get", args: "PATH", summary: "print one credential value", setup: vaultGetCmd},
		{name: "rm", args: "PATH", summary: "delete a credential", setup: vaultRmCmd},
		{name: "import-env", args: "FILE", summary: "import KEY=VALUE lines of a .env file as env/KEY", setup: vaultImportEnvCmd},
		{name: "passwd", summary: "change the vault passphrase", setup: vaultPasswdCmd},
	}},
	{name: "agent", summary: "manage agent identities", sub: []*command{
		{name: "add", args: "NAME", summary: "register an agent; prints its proxy URL once", setup: agentAddCmd},
		{name: "list", summary: "list agents", setup: agentListCmd},
		{name: "rm", args: "NAME", summary: "remove an agent and its key file", setup: agentRmCmd},
		{name: "rotate", args: "NAME", summary: "new key and token; the old token stops working", setup: agentRotateCmd},
	}},
	{name: "policy", summary: "validate the policy, explain a decision", sub: []*command{
		{name: "check", args: "[FILE]", summary: "validate a policy file (default: the home's policy.yaml)", setup: policyCheckCmd},
		{name: "explain", args: "METHOD URL", summary: "which rule, credential and injection a request gets (never the value)", setup: policyExplainCmd},
	}},
	{name: "ca", summary: "the local CA certificate", sub: []*command{
		{name: "export", summary: "print the CA certificate (PEM)", setup: caExportCmd},
		{name: "install", summary: "print (or with --system perform) the steps that make programs trust the CA", setup: caInstallCmd},
	}},
	{name: "audit", summary: "verify the hash chain of audit log files", sub: []*command{
		{name: "verify", args: "FILE...", summary: "check the hash chain of audit log files (rotated files first: FILE.* FILE; --from/--after when older files were deleted)", setup: auditVerifyCmd},
	}},
	{name: "source", summary: "manage credential sources (HelvetiSafe, Vault KV, a command, a directory)", sub: []*command{
		{name: "add", summary: "define a source; airlock's own secrets for it on stdin, one per line", sub: []*command{
			{name: "helvetisafe", args: "NAME", summary: "a HelvetiSafe organisation (client secret or API token, then password, on stdin)", setup: sourceAddCmd(sourceTypeHelvetiSafe)},
			{name: "vault-kv", args: "NAME", summary: "a HashiCorp Vault / OpenBao KV v2 mount (token or AppRole secret ID on stdin)", setup: sourceAddCmd(sourceTypeVaultKV)},
			{name: "exec", args: "NAME -- CMD [ARGS...]", summary: "a command printing the secret ({key} in ARGS is replaced by the key)", setup: sourceAddCmd(sourceTypeExec)},
			{name: "file", args: "NAME", summary: "a directory of secret files (key = file name)", setup: sourceAddCmd(sourceTypeFile)},
		}},
		{name: "list", summary: "list sources: settings, secret names, last fetch (never values)", setup: sourceListCmd},
		{name: "rm", args: "NAME", summary: "delete a source", setup: sourceRmCmd},
	}},
	{name: "approvals", dflt: "list", summary: "list, approve, deny or watch requests held for approval", sub: []*command{
		{name: "list", summary: "list the requests waiting for approval (the default)", setup: approvalsListCmd},
		{name: "approve", args: "ID", summary: "release a held request, and remember the approval --for a while, --always or --once", setup: approvalsApproveCmd},
		{name: "deny", args: "ID", summary: "refuse a held request", setup: approvalsDenyCmd},
		{name: "watch", summary: "print one line per new held request until Ctrl-C", setup: approvalsWatchCmd},
	}},
	{name: "usage", dflt: "show", summary: "LLM tokens and cost by agent, model, credential or day; budgets", sub: []*command{
		{name: "show", summary: "tokens and cost grouped --by agent, model, credential or day (the default)", setup: usageShowCmd},
		{name: "budgets", summary: "each budget of the policy with a bar of what is used", setup: usageBudgetsCmd},
	}},
	{name: "admin", summary: "the admin token of the admin listener", sub: []*command{
		{name: "token", summary: "print the admin token (send it as Authorization: Bearer)", setup: adminTokenCmd},
	}},
	{name: "console", summary: "print (or open) a one-time login URL for the web console", setup: consoleCmd},
	{name: "env", summary: "print shell exports that route an agent through airlock", setup: envCmd},
	{name: "run", args: "-- CMD [ARGS...]", summary: "run CMD with the airlock environment (and none of airlock's secrets)", setup: runCmd},
	{name: "doctor", summary: "check the home, vault, policy, CA, port and shell; print a fix for each problem", setup: doctorCmd},
	{name: "completion", args: "bash|zsh|fish", summary: "print a shell completion script", setup: completionCmd},
	{name: "version", summary: "print the version", setup: versionCmd},
	{name: "help", args: "[COMMAND...]", summary: "show help (also: airlock COMMAND --help)", setup: helpCmd},
}

// command is one entry of the table: a leaf with setup, or a group with
// sub-commands.
type command struct {
	name    string
	args    string // positional arguments in the synopsis, e.g. "PATH", "[FILE]", "-- CMD [ARGS...]"
	summary string
	setup   func(g *globals, fs *flagSet) runFunc
	sub     []*command
	dflt    string // a group's sub-command run when none is named ("approvals" lists)
}

// runFunc runs a command with its positional arguments, after its flags
// were parsed.
type runFunc func(args []string) error

// globals are what every command gets besides its own flags.
type globals struct {
	home  home       // --home, and --passphrase-file for unlocking its vault
	table []*command // the command table (help and completion list it)
}

const usageHeader = `airlock: a credential-injecting egress proxy for AI agents

usage: airlock [--home DIR] [--passphrase-file FILE] COMMAND [ARGS...]
`

const usageFooter = `
environment:
  AIRLOCK_HOME               home directory (default ~/.airlock; --home overrides)
  AIRLOCK_PASSPHRASE         vault passphrase (or --passphrase-file FILE, or a prompt on the terminal)
  AIRLOCK_KEY_FILE           key file that unlocks the vault without a passphrase (unattended use)
  AIRLOCK_NEW_PASSPHRASE     new passphrase for 'vault passwd'
  AIRLOCK_LISTEN             proxy address used in agent URLs (default 127.0.0.1:7600)
  AIRLOCK_ADMIN              admin address of 'serve' (default 127.0.0.1:7700)
  AIRLOCK_ADMIN_TOKEN        admin token 'approvals' and 'console' send (else the vault's)
  AIRLOCK_INSECURE_FAST_KDF  =1 makes 'init' use a weak key derivation: for tests only

'airlock help COMMAND' or 'airlock COMMAND --help' describes a command.
`

// dispatch parses the global flags and runs the subcommand.
func dispatch(args []string) error {
	fs := newFlagSet("airlock")
	fs.interspersed = false
	homeFlag := fs.String("home", "", "home `DIR` (default $AIRLOCK_HOME or ~/.airlock)")
	passFile := fs.String("passphrase-file", "", "read the vault passphrase from `FILE`")
	g := &globals{table: commands}
	perr := fs.Parse(args)
	h, err := resolveHome(*homeFlag)
	h.passphraseFile = *passFile
	g.home = h
	switch {
	case errors.Is(perr, errHelpShown):
		printTopUsage(g)
		return perr
	case perr != nil:
		return withHint(perr, "usage: airlock [--home DIR] [--passphrase-file FILE] COMMAND [ARGS...]; `airlock --help` lists the commands")
	case fs.NArg() == 0:
		printTopUsageTo(g, Stderr)
		return &exitCodeError{code: exitUsage}
	case err != nil:
		return err
	}
	return runCommand(g, g.table, fs.Args(), "airlock")
}

// runCommand finds args[0] in table and runs it (recursing into groups).
func runCommand(g *globals, table []*command, args []string, prefix string) error {
	c := lookup(table, args[0])
	if c == nil {
		return withHint(usageErrorf("unknown command %q", strings.TrimSpace(prefix+" "+args[0])),
			"run `"+prefix+" --help` to list the commands")
	}
	path := prefix + " " + c.name
	if c.sub != nil {
		if c.dflt != "" && (len(args) < 2 || strings.HasPrefix(args[1], "-") && args[1] != "-h" && args[1] != "--help") {
			args = append([]string{args[0], c.dflt}, args[1:]...)
		}
		if len(args) < 2 {
			printGroupUsage(Stderr, g, path, c.sub)
			return &exitCodeError{code: exitUsage}
		}
		if args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
			printGroupUsage(Stdout, g, path, c.sub)
			return errHelpShown
		}
		return runCommand(g, c.sub, args[1:], path)
	}
	fs, run := c.flags(g, path)
	err := fs.Parse(args[1:])
	if errors.Is(err, errHelpShown) {
		printLeafUsage(Stdout, c, fs)
		return err
	}
	if err == nil {
		err = c.checkArgs(fs.Args())
	}
	if err == nil {
		err = run(fs.Args())
	}
	var ue *usageErr
	if errors.As(err, &ue) && hintOf(err) == "" {
		err = withHint(err, "usage: "+c.synopsis(fs))
	}
	return err
}

// flags builds c's flag set (named by its full path, "airlock vault set")
// and the function that runs it.
func (c *command) flags(g *globals, path string) (*flagSet, runFunc) {
	fs := newFlagSet(path)
	return fs, c.setup(g, fs)
}

func lookup(table []*command, name string) *command {
	for _, c := range table {
		if c.name == name {
			return c
		}
	}
	return nil
}

// helpCmd prints the usage of the whole tool or of one command, on stdout.
func helpCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		table, path := g.table, "airlock"
		for i, name := range args {
			c := lookup(table, name)
			if c == nil {
				return withHint(usageErrorf("unknown command %q", strings.Join(args[:i+1], " ")), "run `airlock help` to list the commands")
			}
			path += " " + c.name
			if c.sub == nil {
				cfs, _ := c.flags(g, path)
				printLeafUsage(Stdout, c, cfs)
				return nil
			}
			table = c.sub
		}
		if len(args) == 0 {
			printTopUsage(g)
		} else {
			printGroupUsage(Stdout, g, path, table)
		}
		return nil
	}
}

func versionCmd(g *globals, fs *flagSet) runFunc {
	return func([]string) error {
		fmt.Fprintf(Stdout, "airlock %s\n", version)
		return nil
	}
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
