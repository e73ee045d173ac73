package policy

import (
	"strconv"
	"strings"
)

// Nearest returns the rule for host and port that comes closest to
// matching agent, method and the judged path: the one that differs in the
// fewest of the three (the first such in file order), or nil when no rule
// names the host and port.
func (p *Policy) Nearest(agent, method, host string, port int, judgedPath string) *Rule {
	if p == nil || p.idx == nil {
		return nil
	}
	var buf [maxHost]byte
	h, ok := normHost(&buf, host)
	if !ok {
		return nil
	}
	m := methodBit(method)
	var best *Rule
	bestScore := 4
	for _, r := range p.Rules {
		if !r.host.match(h) || !r.matchPort(port) {
			continue
		}
		score := 0
		for _, miss := range [3]bool{!r.AppliesTo(agent), r.methods != 0 && r.methods&m == 0,
			judgedPath != "" && !r.matchPath(judgedPath)} {
			if miss {
				score++
			}
		}
		if score < bestScore {
			best, bestScore = r, score
		}
	}
	return best
}

// NoMatchDetail is the detail of an ACCESS_DENIED answer when no rule
// matched: "no rule matches this agent, method and path", naming the
// nearest rule (see [Policy.Nearest]) and what differs. It names no
// credential and no other agent, so it is safe to send to the agent.
func (p *Policy) NoMatchDetail(agent, method, host string, port int, judgedPath string) string {
	d := p.nearestDetail(agent, method, host, port, judgedPath)
	if d == "" {
		return "no rule names " + host + " for this agent"
	}
	return "no rule matches this agent, method and path; nearest: " + d
}

// nearestDetail describes the nearest rule, "" when there is none.
func (p *Policy) nearestDetail(agent, method, host string, port int, judgedPath string) string {
	r := p.Nearest(agent, method, host, port, judgedPath)
	if r == nil {
		return ""
	}
	var diffs []string
	if !r.AppliesTo(agent) {
		diffs = append(diffs, "it is for other agents")
	}
	if r.methods != 0 && r.methods&methodBit(method) == 0 {
		diffs = append(diffs, "it allows methods "+strings.Join(r.Methods, ", ")+", not "+strings.ToUpper(method))
	}
	if judgedPath != "" && !r.matchPath(judgedPath) {
		diffs = append(diffs, "it allows paths "+strings.Join(r.Paths, ", "))
	}
	s := "rule " + r.Name + " (" + p.File + ":" + strconv.Itoa(r.Line) + ":" + strconv.Itoa(r.Column) + ")"
	if len(diffs) == 0 {
		return s
	}
	return s + ": " + strings.Join(diffs, "; ")
}
