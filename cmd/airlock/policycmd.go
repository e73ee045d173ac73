package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/airlock/airlock/policy"
)

func policyCheckCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		file := g.home.PolicyPath()
		if len(args) == 1 {
			file = args[0]
		}
		p, err := loadPolicy(file)
		if err != nil {
			return err
		}
		n := printLint(p, lintInventory(g.home, openVaultNoPrompt(g.home)))
		warn := ""
		if n > 0 {
			warn = fmt.Sprintf("; %d warning(s) above", n)
		}
		fmt.Fprintf(Stderr, "airlock: policy %s ok (%d rules, %d grants)%s\n", file, len(p.Rules), len(p.Grants), warn)
		return nil
	}
}

// loadPolicy loads file; on failure every positioned problem is printed
// to stderr as "file:line:col: msg" and the error says how many.
func loadPolicy(file string) (*policy.Policy, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, withHint(fmt.Errorf("policy %s: %w", file, err), "`airlock init` writes an example policy.yaml; or pass the file to check")
	}
	p, err := policy.Load(file)
	if err == nil {
		return p, nil
	}
	perrs := policyErrors(err)
	if len(perrs) == 0 {
		return nil, withHint(fmt.Errorf("policy %s: %w", file, err), "fix the policy file and run `airlock policy check` again")
	}
	for _, e := range perrs {
		fmt.Fprintf(Stderr, "%s:%d:%d: %s\n", e.File, e.Line, e.Column, e.Msg)
	}
	return nil, withHint(fmt.Errorf("policy %s has %d problem(s)", file, len(perrs)), "fix the lines above and run `airlock policy check` again")
}

// policyErrors collects the *policy.Error values in err's tree.
func policyErrors(err error) []*policy.Error {
	var pe *policy.Error
	switch e := err.(type) {
	case nil:
		return nil
	case *policy.Error:
		return []*policy.Error{e}
	case interface{ Unwrap() []error }:
		var out []*policy.Error
		for _, inner := range e.Unwrap() {
			out = append(out, policyErrors(inner)...)
		}
		return out
	case interface{ Unwrap() error }:
		return policyErrors(e.Unwrap())
	}
	if errors.As(err, &pe) {
		return []*policy.Error{pe}
	}
	return nil
}

// explanationJSON is `policy explain --json`: policy.Explanation without
// the error value, never a secret.
type explanationJSON struct {
	Agent        string `json:"agent"`
	Method       string `json:"method"`
	Scheme       string `json:"scheme"`
	Host         string `json:"host"`
	Port         int    `json:"port"`
	Path         string `json:"path"`
	Decision     string `json:"decision"`
	Rule         string `json:"rule,omitempty"`
	RuleAt       string `json:"rule_at,omitempty"`
	Credential   string `json:"credential,omitempty"`
	InjectType   string `json:"inject_type,omitempty"`
	InjectHeader string `json:"inject_header,omitempty"`
	Reason       string `json:"reason"`
	Report       bool   `json:"report_mode"`
}

func policyExplainCmd(g *globals, fs *flagSet) runFunc {
	agent := fs.String("agent", "", "(required) agent `NAME`")
	file := fs.String("policy", g.home.PolicyPath(), "policy `FILE`")
	asJSON := fs.Bool("json", false, "print JSON")
	return func(args []string) error {
		if *agent == "" {
			return usageError("--agent NAME is required")
		}
		p, err := loadPolicy(*file)
		if err != nil {
			return err
		}
		ex := p.Explain(*agent, args[0], args[1])
		if ex.Err != nil {
			return withHint(usageErrorf("invalid URL %q: %v", args[1], ex.Err), "give a full URL such as https://api.openai.com/v1/models")
		}
		if !*asJSON {
			_, err := fmt.Fprint(Stdout, ex.String())
			return err
		}
		j := explanationJSON{Agent: ex.Agent, Method: ex.Method, Scheme: ex.Scheme, Host: ex.Host, Port: ex.Port,
			Path: ex.Path, Decision: ex.Action, Rule: ex.Rule, Credential: ex.Credential, Reason: ex.Reason, Report: ex.Report}
		if ex.Rule != "" {
			j.RuleAt = fmt.Sprintf("%s:%d:%d", ex.File, ex.Line, ex.Col)
		}
		if ex.Credential != "" {
			j.InjectType, j.InjectHeader = ex.Inject.Type, ex.Inject.Header
		}
		return writeJSON(j)
	}
}

func caExportCmd(g *globals, fs *flagSet) runFunc {
	return func(args []string) error {
		b, err := os.ReadFile(g.home.CAPath())
		if err != nil {
			return withHint(fmt.Errorf("read CA certificate: %w", err), "run `airlock init` first, or point --home / AIRLOCK_HOME at your airlock home")
		}
		_, err = Stdout.Write(b)
		return err
	}
}
