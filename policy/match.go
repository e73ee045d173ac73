package policy

// index finds the rules whose host pattern can match a host, in file order.
type index struct {
	exact map[string][]int32 // host → exact-host rules
	wild  map[string][]int32 // suffix after "*." → wildcard rules

	minWild, maxWild int // length bounds of the wild keys, to skip lookups
}

func buildIndex(rules []*Rule) *index {
	ix := &index{exact: map[string][]int32{}, wild: map[string][]int32{}}
	for i, r := range rules {
		m := ix.exact
		if r.host.wildcard {
			m = ix.wild
		}
		m[r.host.key] = append(m[r.host.key], int32(i))
		if r.host.wildcard {
			if ix.minWild == 0 || len(r.host.key) < ix.minWild {
				ix.minWild = len(r.host.key)
			}
			ix.maxWild = max(ix.maxWild, len(r.host.key))
		}
	}
	return ix
}

// maxLists bounds the candidate lists merged on the stack: the exact list
// plus one per matching wildcard suffix. Deeper hosts fall back to a scan.
const maxLists = 8

// cursor merges sorted candidate lists into one ascending sequence.
type cursor struct {
	lists [maxLists][]int32
	n     int
}

// candidates loads the lists that can match h; false means too many lists.
func (ix *index) candidates(c *cursor, h []byte) bool {
	if l := ix.exact[string(h)]; len(l) > 0 {
		c.lists[0], c.n = l, 1
	}
	if len(ix.wild) == 0 {
		return true
	}
	for i := 0; i < len(h); i++ {
		if h[i] != '.' {
			continue
		}
		if n := len(h) - i - 1; n > ix.maxWild {
			continue
		} else if n < ix.minWild {
			break
		}
		if l := ix.wild[string(h[i+1:])]; len(l) > 0 {
			if c.n == maxLists {
				return false
			}
			c.lists[c.n] = l
			c.n++
		}
	}
	return true
}

// next pops the smallest rule index, or -1 when done.
func (c *cursor) next() int32 {
	best := -1
	for i := 0; i < c.n; i++ {
		if len(c.lists[i]) > 0 && (best < 0 || c.lists[i][0] < c.lists[best][0]) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	v := c.lists[best][0]
	c.lists[best] = c.lists[best][1:]
	return v
}

// Match returns the first rule matching agent, method, host, port and path,
// or nil. Any action counts, deny included. host may carry a trailing dot
// or IPv6 brackets and is compared case-insensitively; path is the cleaned
// path without query (see [CleanPath]).
func (p *Policy) Match(agent, method, host string, port int, path string) *Rule {
	if p == nil || p.idx == nil {
		return nil
	}
	var buf [maxHost]byte
	h, ok := normHost(&buf, host)
	if !ok {
		return nil
	}
	m := methodBit(method)
	var c cursor
	if !p.idx.candidates(&c, h) {
		return p.scan(h, agent, m, port, path)
	}
	for i := c.next(); i >= 0; i = c.next() {
		if r := p.Rules[i]; r.matchRequest(agent, m, port, path) {
			return r
		}
	}
	return nil
}

// scan is Match without the index.
func (p *Policy) scan(h []byte, agent string, m uint16, port int, path string) *Rule {
	for _, r := range p.Rules {
		if r.host.match(h) && r.matchRequest(agent, m, port, path) {
			return r
		}
	}
	return nil
}

// ConnectDecision is the verdict for a CONNECT host:port by agent. Walking
// the rules for agent, host and port in order: a tunnel rule gives
// ActionTunnel; a deny rule without methods or paths gives ActionDeny; any
// other rule means "MITM and judge each request" and gives its action
// (ActionInject or ActionAllow; a deny limited by methods or paths gives
// ActionAllow, since other requests may pass). rule is nil when no rule
// named the host, and the action is then Egress.Unmatched.
func (p *Policy) ConnectDecision(agent, host string, port int) (action string, rule *Rule) {
	if p == nil {
		return ActionDeny, nil
	}
	if p.idx != nil {
		var buf [maxHost]byte
		if h, ok := normHost(&buf, host); ok {
			if r := p.firstForHost(h, agent, port); r != nil {
				return r.connectAction(), r
			}
		}
	}
	return p.Egress.Unmatched, nil
}

// firstForHost returns the first rule for agent, h and port.
func (p *Policy) firstForHost(h []byte, agent string, port int) *Rule {
	var c cursor
	if !p.idx.candidates(&c, h) {
		for _, r := range p.Rules {
			if r.host.match(h) && r.matchPort(port) && r.AppliesTo(agent) {
				return r
			}
		}
		return nil
	}
	for i := c.next(); i >= 0; i = c.next() {
		if r := p.Rules[i]; r.matchPort(port) && r.AppliesTo(agent) {
			return r
		}
	}
	return nil
}

func (r *Rule) connectAction() string {
	if r.Action == ActionDeny && (len(r.Methods) > 0 || len(r.Paths) > 0) {
		return ActionAllow
	}
	return r.Action
}

// AppliesTo reports whether the rule covers agent.
func (r *Rule) AppliesTo(agent string) bool {
	if len(r.Agents) == 0 {
		return true
	}
	for _, a := range r.Agents {
		if a == agent {
			return true
		}
	}
	return false
}

// matchPort: a rule without a port matches the default ports 443 and 80.
func (r *Rule) matchPort(port int) bool {
	if r.Port == 0 {
		return port == 443 || port == 80
	}
	return port == r.Port
}

// matchRequest checks everything but the host.
func (r *Rule) matchRequest(agent string, method uint16, port int, path string) bool {
	return r.matchHead(agent, method, port) && r.matchPath(path)
}

// matchHead checks agent, method and port.
func (r *Rule) matchHead(agent string, method uint16, port int) bool {
	if !r.matchPort(port) || !r.AppliesTo(agent) {
		return false
	}
	return r.methods == 0 || r.methods&method != 0
}

// matchPath matches a judged path against the rule's globs. Deny rules
// match case-insensitively and with or without a trailing slash, so
// "/v1/Delete-Account/" meets a deny of "/v1/delete-account".
func (r *Rule) matchPath(path string) bool {
	if len(r.paths) == 0 {
		return true
	}
	deny := r.Action == ActionDeny
	for i := range r.paths {
		if r.paths[i].match(path, deny) {
			return true
		}
	}
	if n := len(path); deny && n > 1 && path[n-1] == '/' {
		for i := range r.paths {
			if r.paths[i].match(path[:n-1], true) {
				return true
			}
		}
	}
	return false
}
