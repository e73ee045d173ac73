package policy

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile file (alias fan-out, error floods) cheap.
const (
	maxNodes  = 200_000
	maxErrors = 100
)

// errBudget aborts a walk that visits too many nodes; Parse recovers it.
var errBudget = errors.New("policy walk budget exceeded")

// parser walks a yaml.v3 node tree, collecting positioned errors.
type parser struct {
	file      string
	errs      ErrorList
	nodes     int
	approvals Approvals // the approvals section, parsed before the rules
}

// pos is a position in the file, kept for [Lint].
type pos struct{ line, col int }

func posOf(n *yaml.Node) pos {
	if n == nil {
		return pos{1, 1}
	}
	return pos{max(n.Line, 1), max(n.Column, 1)}
}

type rulePos struct {
	agents     []pos
	credential pos
}

type grantPos struct {
	agents []pos
	creds  []pos
}

type budgetPos struct{ agent, rule, credential pos }

// errf records a problem at n (1:1 when n has no position). ctx names the
// key, e.g. "rules[2].host".
func (p *parser) errf(n *yaml.Node, ctx, format string, args ...any) {
	if len(p.errs) >= maxErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if ctx != "" {
		msg = ctx + ": " + msg
	}
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, Msg: msg})
}

// deref follows aliases and counts the node against the walk budget.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			panic(errBudget)
		}
		n = n.Alias
	}
	if p.nodes++; p.nodes > maxNodes {
		panic(errBudget)
	}
	return n
}

// entry is one key/value pair of a mapping.
type entry struct{ key, val *yaml.Node }

// mapping checks that n is a mapping whose keys are all in known, reporting
// unknown and duplicate keys. It returns the entries by key.
func (p *parser) mapping(ctx string, n *yaml.Node, known ...string) (map[string]entry, bool) {
	n = p.deref(n)
	if n.Kind != yaml.MappingNode {
		p.errf(n, ctx, "want a mapping, got %s", kind(n))
		return nil, false
	}
	m := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errf(k, ctx, "want a key name, got %s", kind(k))
			continue
		}
		if first, dup := m[k.Value]; dup {
			p.errf(k, ctx, "duplicate key %q (first at line %d)", k.Value, first.key.Line)
			continue
		}
		if !contains(known, k.Value) {
			p.errf(k, ctx, "unknown key %q%s", k.Value, suggest(k.Value, known))
			continue
		}
		m[k.Value] = entry{k, v}
	}
	return m, true
}

// kind names n's type for error messages.
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing (null)"
	case "!!bool":
		return "a boolean"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	}
	return "a string"
}

// isNull reports whether n is an empty value ("key:" with nothing after).
func (p *parser) isNull(n *yaml.Node) bool {
	n = p.deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// str returns a scalar's text. Numbers and dates are taken as written;
// null, booleans, lists and mappings are errors.
func (p *parser) str(ctx string, n *yaml.Node) (string, bool) {
	n = p.deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" || n.ShortTag() == "!!bool" {
		p.errf(n, ctx, "want a string, got %s", kind(n))
		return "", false
	}
	return n.Value, true
}

// strList returns a non-empty list of strings with each item's node.
func (p *parser) strList(ctx string, n *yaml.Node, omitHint string) ([]string, []*yaml.Node, bool) {
	n = p.deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, ctx, "want a list, got %s", kind(n))
		return nil, nil, false
	}
	if len(n.Content) == 0 {
		p.errf(n, ctx, "empty list%s", omitHint)
		return nil, nil, false
	}
	out, nodes, ok := make([]string, 0, len(n.Content)), make([]*yaml.Node, 0, len(n.Content)), true
	for i, item := range n.Content {
		s, good := p.str(ctx+"["+strconv.Itoa(i)+"]", item)
		if !good {
			ok = false
			continue
		}
		out, nodes = append(out, s), append(nodes, p.deref(item))
	}
	return out, nodes, ok
}

// boolean returns a YAML boolean.
func (p *parser) boolean(ctx string, n *yaml.Node) (bool, bool) {
	n = p.deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.errf(n, ctx, "want true or false, got %s", kind(n))
		return false, false
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", true
}

// integer returns a YAML integer.
func (p *parser) integer(ctx string, n *yaml.Node) (int, bool) {
	n = p.deref(n)
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.errf(n, ctx, "want an integer, got %s", kind(n))
		return 0, false
	}
	return v, true
}

// duration returns a positive Go duration string such as "60s". A bare
// integer is refused with a hint, since its unit would be a guess.
func (p *parser) duration(ctx string, n *yaml.Node) (time.Duration, bool) {
	n = p.deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		p.errf(n, ctx, "want a duration with a unit, e.g. %q", n.Value+"s")
		return 0, false
	}
	s, ok := p.str(ctx, n)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.errf(n, ctx, "bad duration %q (want e.g. \"60s\", \"2m\")", s)
		return 0, false
	}
	return d, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "x"?)` for the known key closest to s.
func suggest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance, capped for long inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
