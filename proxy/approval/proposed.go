package approval

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/airlock/airlock/vault"
	"gopkg.in/yaml.v3"
)

// ProposedFile is the name of the file beside the policy that "always"
// approvals of unmatched requests append rules to, for review in git.
const ProposedFile = "policy.proposed.yaml"

// proposedRule is the rule an approval implies, in policy rule YAML.
// Credential and action are left for the reviewer.
type proposedRule struct {
	Name    string   `yaml:"name"`
	Agents  []string `yaml:"agents"`
	Host    string   `yaml:"host"`
	Methods []string `yaml:"methods,omitempty,flow"`
	Paths   []string `yaml:"paths,omitempty,flow"`
}

var (
	proposedMu sync.Mutex // serialises appends to proposed files in this process
	nameBad    = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	methodOK   = regexp.MustCompile(`^[A-Z]{1,16}$`)
	segOK      = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)
)

// ProposedRule returns the YAML fragment (one rules: list item, preceded by
// a comment saying who approved what and when) that approval d of unmatched
// entry p implies. Every value comes from the request, so it is marshalled,
// never pasted: a hostile host or path cannot add keys or rules.
func ProposedRule(p Pending, d Decision) ([]byte, error) {
	for _, v := range []string{p.Agent, p.Host} {
		if v == "" || !utf8.ValidString(v) || strings.IndexFunc(v, notPrint) >= 0 {
			return nil, fmt.Errorf("propose a rule: agent %q or host %q cannot be written as a rule", oneLine(p.Agent), oneLine(p.Host))
		}
	}
	r := proposedRule{Name: ruleName(p.Agent, p.Host, p.ID), Agents: []string{p.Agent}, Host: p.Host}
	if methodOK.MatchString(p.Method) && p.Method != "CONNECT" {
		r.Methods = []string{p.Method}
	}
	if g := pathGlob(p.Path); g != "" && p.Method != "CONNECT" {
		r.Paths = []string{g}
	}
	body, err := yaml.Marshal([]proposedRule{r})
	if err != nil {
		return nil, fmt.Errorf("encode proposed rule: %w", err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n# %s: approved always by %s for %s %s %s%s (approval %s, no rule matched).\n",
		d.At.UTC().Format(time.RFC3339), oneLine(d.Approver), oneLine(p.Agent), oneLine(p.Method),
		oneLine(p.Host), oneLine(p.Path), p.ID)
	b.WriteString("# Review it, narrow paths/methods, add credential: or action:, then move it under rules: in policy.yaml.\n")
	b.Write(body)
	return b.Bytes(), nil
}

// AppendProposed appends the rule implied by approval d of entry p to the
// file at path (created 0644 when missing), atomically. It never touches
// the policy itself.
func AppendProposed(path string, p Pending, d Decision) error {
	frag, err := ProposedRule(p, d)
	if err != nil {
		return err
	}
	proposedMu.Lock()
	defer proposedMu.Unlock()
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(old) == 0 {
		old = []byte("# Rules implied by approvals (airlock approvals approve --always).\n" +
			"# A list of policy rules: review each, then move it under rules: in policy.yaml.\n")
	}
	if err := vault.WriteFile(path, append(old, frag...), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ruleName derives a unique policy rule name from agent, host and the
// approval id.
func ruleName(agent, host, id string) string {
	n := strings.Trim(nameBad.ReplaceAllString("approved-"+agent+"-"+host, "-"), "-._")
	if len(n) > 50 {
		n = n[:50]
	}
	return n + "-" + strings.TrimPrefix(id, "ap-")
}

// pathGlob widens a request path to its first segment: /v1/chat -> /v1/**.
func pathGlob(path string) string {
	if path == "" || path[0] != '/' {
		return ""
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	seg := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)[0]
	if !segOK.MatchString(seg) {
		return "/**"
	}
	return "/" + seg + "/**"
}

// oneLine makes s safe inside a YAML comment: no line breaks or controls.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if notPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// notPrint reports runes YAML comments or plain scalars must not hold.
func notPrint(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError || r == 0xfeff }
