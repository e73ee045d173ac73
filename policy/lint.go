package policy

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Inventory is what exists outside the policy, for [Lint].
type Inventory struct {
	// Credentials are the paths the vault holds. nil: unknown (the vault
	// is locked); an empty vault is a non-nil empty slice.
	Credentials []string
	// Agents are the registered agent names (the keys/ directory suffices).
	// nil: unknown.
	Agents []string
}

// Warning is a problem that does not make the policy invalid but will
// make requests fail: a name the policy uses that does not exist yet.
type Warning struct {
	File         string
	Line, Column int
	Msg          string
	Fix          string // the command (or edit) that fixes it
}

// String returns "file:line:col: warning: msg (fix: `cmd`)".
func (w Warning) String() string {
	s := w.File + ":" + strconv.Itoa(w.Line) + ":" + strconv.Itoa(w.Column) + ": warning: " + w.Msg
	if w.Fix != "" {
		s += " (fix: `" + w.Fix + "`)"
	}
	return s
}

// Lint reports, in file order, every credential the policy names that the
// vault lacks, every agent it names that is not registered, every grant
// credential glob that matches nothing in the vault, and budgets that can
// never count (a scope rule that is not metered). Checks whose inventory is
// nil are skipped. It never reads a secret.
func Lint(p *Policy, inv Inventory) []Warning {
	if p == nil {
		return nil
	}
	l := linter{file: p.File, inv: inv}
	for _, r := range p.Rules {
		for i, a := range r.Agents {
			l.agent(r.pos.agents[i], "rule "+r.Name, a)
		}
		if r.Credential != "" {
			l.credential(r.pos.credential, "rule "+r.Name, r.Credential)
		}
	}
	for gi, g := range p.Grants {
		ctx := "grants[" + strconv.Itoa(gi) + "]"
		for i, a := range g.Agents {
			l.agent(g.pos.agents[i], ctx, a)
		}
		for i, c := range g.Credentials {
			l.glob(g.pos.creds[i], ctx, c, g.creds[i])
		}
	}
	for _, b := range p.Budgets {
		l.budget(p, b)
	}
	slices.SortStableFunc(l.out, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return l.out
}

type linter struct {
	file string
	inv  Inventory
	out  []Warning
}

func (l *linter) add(at pos, msg, fix string) {
	l.out = append(l.out, Warning{File: l.file, Line: at.line, Column: at.col, Msg: msg, Fix: fix})
}

func (l *linter) agent(at pos, ctx, name string) {
	if l.inv.Agents != nil && !contains(l.inv.Agents, name) {
		l.add(at, ctx+" names agent "+strconv.Quote(name)+", which is not registered", "airlock agent add "+name)
	}
}

func (l *linter) credential(at pos, ctx, path string) {
	if l.inv.Credentials != nil && !contains(l.inv.Credentials, path) {
		l.add(at, ctx+" names credential "+strconv.Quote(path)+", which the vault does not hold", "airlock vault set "+path)
	}
}

func (l *linter) glob(at pos, ctx, pattern string, g glob) {
	if l.inv.Credentials == nil {
		return
	}
	if !strings.Contains(pattern, "*") {
		l.credential(at, ctx, pattern)
		return
	}
	for _, c := range l.inv.Credentials {
		if g.segs == nil || g.match(c, false) {
			return
		}
	}
	l.add(at, ctx+" grants credential glob "+strconv.Quote(pattern)+", which matches nothing in the vault",
		"airlock vault set "+strings.ReplaceAll(pattern, "*", "NAME"))
}

func (l *linter) budget(p *Policy, b Budget) {
	ctx := "budget " + b.Name
	if b.Agent != "" {
		l.agent(b.pos.agent, ctx, b.Agent)
	}
	if b.Credential != "" {
		l.credential(b.pos.credential, ctx, b.Credential)
	}
	for _, r := range p.Rules {
		if r.Name == b.Rule && r.Usage == UsageNone {
			l.add(b.pos.rule, ctx+" is scoped to rule "+r.Name+", which is not metered, so it never counts",
				"add usage: openai (or anthropic) to rule "+r.Name)
		}
	}
}
