package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse parses and validates a policy. file is used in error messages.
// On failure the error is an ErrorList (errors.As) of every problem found.
func Parse(file string, data []byte) (pol *Policy, err error) {
	p := &parser{file: file}
	defer func() {
		if r := recover(); r != nil {
			if r != errBudget { //nolint:errorlint // sentinel identity
				panic(r)
			}
			p.errf(nil, "", "policy too complex (over %d YAML nodes after aliases)", maxNodes)
			pol, err = nil, p.errs.sorted()
		}
	}()
	root := p.document(data)
	if root == nil {
		return nil, p.errs.sorted()
	}
	pol = &Policy{File: file, Hash: hash(data)}
	p.policy(root, pol)
	if len(p.errs) > 0 {
		return nil, p.errs.sorted()
	}
	pol.idx = buildIndex(pol.Rules)
	return pol, nil
}

// Load reads and parses the file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(path, data)
}

func hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// yamlLine finds the line number in a yaml.v3 syntax error.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// document decodes data into a node tree: exactly one non-empty document.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errf(nil, "", "empty policy (want at least \"version: 1\")")
		} else {
			p.syntaxError(data, err)
		}
		return nil
	}
	if len(doc.Content) == 0 || doc.Content[0].ShortTag() == "!!null" {
		p.errf(&doc, "", "empty policy (want at least \"version: 1\")")
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntaxError(data, err)
		return nil
	default:
		p.errf(&next, "", "a second YAML document; a policy is one document")
		return nil
	}
	return doc.Content[0]
}

// syntaxError turns a yaml.v3 error into a positioned one.
func (p *parser) syntaxError(data []byte, err error) {
	msg := err.Error()
	line, col := 1, 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	if indentError(msg) {
		if l, c, ok := findIndentError(data, line); ok {
			line, col = l, c
			msg = "this line's indentation does not fit the lines above it (yaml: " + msg + ")"
		}
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: max(line, 1), Column: col, Msg: "invalid YAML: " + msg})
}

// indentError reports whether a yaml.v3 message is one it gives for a
// mis-indented line, citing the line where the enclosing block began.
func indentError(msg string) bool {
	return strings.HasPrefix(msg, "did not find expected key") ||
		strings.HasPrefix(msg, "did not find expected '-' indicator") ||
		strings.HasPrefix(msg, "mapping values are not allowed in this context") ||
		strings.HasPrefix(msg, "did not find expected <document start>")
}

// maxIndentSearch bounds the prefix search (quadratic in lines).
const maxIndentSearch = 2000

// findIndentError finds the first line from the one yaml.v3 named whose
// addition makes the document fail with an indentation error: parsing
// ever longer prefixes, the line where the error appears is the line that
// is wrong. It returns that line and the column of its first character.
func findIndentError(data []byte, from int) (int, int, bool) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxIndentSearch {
		return 0, 0, false
	}
	end := 0
	for i := range lines {
		end += len(lines[i])
		if i+1 < from {
			continue
		}
		var n yaml.Node
		err := yaml.Unmarshal(data[:end], &n)
		if err == nil {
			continue
		}
		msg := yamlLine.ReplaceAllString(err.Error(), "")
		if !indentError(msg) {
			continue // a multi-line value cut short: read on
		}
		text := lines[i]
		col := len(text) - len(bytes.TrimLeft(text, " "))
		return i + 1, col + 1, true
	}
	return 0, 0, false
}

// policy walks the top-level mapping.
func (p *parser) policy(root *yaml.Node, pol *Policy) {
	m, ok := p.mapping("", root, "version", "egress", "rules", "grants", "approvals", "budgets", "prices")
	if !ok {
		return
	}
	if e, ok := m["version"]; !ok {
		p.errf(root, "", "missing required key \"version\" (want version: 1)")
	} else if v, ok := p.integer("version", e.val); ok {
		if v != 1 {
			p.errf(e.val, "version", "unsupported version %d (want 1)", v)
		}
		pol.Version = v
	}
	pol.Egress = Egress{Unmatched: ActionDeny, Mode: ModeEnforce}
	// A section left empty ("rules:" with every rule commented out) is an
	// empty section.
	if e, ok := m["egress"]; ok && !p.isNull(e.val) {
		p.egress(e.val, &pol.Egress)
	}
	pol.Approvals = Approvals{Timeout: DefaultApprovalTimeout, Remember: RememberSession}
	if e, ok := m["approvals"]; ok && !p.isNull(e.val) {
		p.approvalsSection(e.val, &pol.Approvals)
	}
	p.approvals = pol.Approvals
	if e, ok := m["rules"]; ok && !p.isNull(e.val) {
		pol.Rules = p.rules(e.val)
	}
	if e, ok := m["grants"]; ok && !p.isNull(e.val) {
		pol.Grants = p.grants(e.val)
	}
	if e, ok := m["budgets"]; ok && !p.isNull(e.val) {
		pol.Budgets = p.budgets(e.val, pol.Rules)
	}
	if e, ok := m["prices"]; ok && !p.isNull(e.val) {
		pol.Prices = p.prices(e.val)
	}
}

// egress walks the egress section into eg, which holds the defaults.
func (p *parser) egress(n *yaml.Node, eg *Egress) {
	m, ok := p.mapping("egress", n, "unmatched", "allow_networks", "mode", "upstream_proxy")
	if !ok {
		return
	}
	if e, ok := m["unmatched"]; ok {
		if s, ok := p.str("egress.unmatched", e.val); ok {
			if s != ActionDeny && s != ActionTunnel && s != ActionAsk {
				p.errf(e.val, "egress.unmatched", "unknown value %q (want deny, tunnel or ask)", s)
			}
			eg.Unmatched = s
		}
	}
	if e, ok := m["mode"]; ok {
		if s, ok := p.str("egress.mode", e.val); ok {
			if s != ModeEnforce && s != ModeReport {
				p.errf(e.val, "egress.mode", "unknown value %q (want enforce or report)", s)
			}
			eg.Mode = s
		}
	}
	if e, ok := m["allow_networks"]; ok && !p.isNull(e.val) {
		eg.AllowNetworks = p.networks(e.val)
	}
	if e, ok := m["upstream_proxy"]; ok {
		if s, ok := p.str("egress.upstream_proxy", e.val); ok && s != "" {
			if msg := checkUpstreamProxy(s); msg != "" {
				p.errf(e.val, "egress.upstream_proxy", "%s", msg)
			}
			eg.UpstreamProxy = s
		}
	}
}

// networks parses allow_networks: CIDRs or single addresses. An empty list
// is fine here (nothing exempt).
func (p *parser) networks(n *yaml.Node) []netip.Prefix {
	n = p.deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errf(n, "egress.allow_networks", "want a list, got %s", kind(n))
		return nil
	}
	var out []netip.Prefix
	for i, item := range n.Content {
		ctx := "egress.allow_networks[" + strconv.Itoa(i) + "]"
		s, ok := p.str(ctx, item)
		if !ok {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil || addr.Zone() != "" {
				p.errf(p.deref(item), ctx, "bad network %q (want a CIDR such as \"127.0.0.0/8\" or an address)", s)
				continue
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out
}

// checkUpstreamProxy validates an upstream proxy URL. The message never
// repeats the URL: it may carry a password.
func checkUpstreamProxy(s string) string {
	const want = "want http://[user:pass@]host:port"
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL; " + want
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "scheme must be http or https; " + want
	case u.Hostname() == "":
		return "no host; " + want
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return "no path, query or fragment allowed; " + want
	}
	if ps := u.Port(); ps != "" {
		if n, err := strconv.Atoi(ps); err != nil || n < 1 || n > 65535 {
			return "bad port; " + want
		}
	}
	return ""
}
