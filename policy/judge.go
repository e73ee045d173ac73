package policy

// Judge is the one call the proxy makes per request: it normalises the
// request-target the agent sent (see [NormalizePath]) and returns the
// first rule for agent, method, host and port whose paths match the
// judged path, or nil when none does (egress.unmatched then applies).
// target is the raw request-target (http.Request.RequestURI, or for a
// request the proxy built itself URL.RequestURI()); its query is ignored.
//
// Forward the request with path.Forward (see [Path.SetURL]): it is the
// escaped form of exactly what was judged.
//
// The error wraps [ErrBadPath] (as a *PathError, answer 400 BAD_PATH) when
// no rule can accept the path, or when the first candidate rule with
// paths: meets a feature in Path.Unsafe it did not opt into with
// unsafe_paths:; rule is then that rule. Deny rules that opt into a
// feature match both the judged path and the laxest reading of it
// (escaped slashes as separators, ";" parameters stripped).
//
// It does not allocate for a canonical path.
func (p *Policy) Judge(agent, method, host string, port int, target string) (rule *Rule, path Path, err error) {
	path, err = NormalizePath(target)
	if err != nil || p == nil || p.idx == nil {
		return nil, path, err
	}
	var buf [maxHost]byte
	h, ok := normHost(&buf, host)
	if !ok {
		return nil, path, nil
	}
	j := judging{agent: agent, method: methodBit(method), port: port, path: &path}
	var c cursor
	if !p.idx.candidates(&c, h) {
		for _, r := range p.Rules {
			if r.host.match(h) {
				if done, err := j.try(r); done {
					return r, path, err
				}
			}
		}
		return nil, path, nil
	}
	for i := c.next(); i >= 0; i = c.next() {
		if done, err := j.try(p.Rules[i]); done {
			return p.Rules[i], path, err
		}
	}
	return nil, path, nil
}

// judging is one request being judged against candidate rules.
type judging struct {
	agent  string
	method uint16
	port   int
	path   *Path
	alt    string // altForm of the judged path, computed once when needed
}

// try reports whether r decides the request: it matches, or it refuses
// the path.
func (j *judging) try(r *Rule) (bool, error) {
	if !r.matchHead(j.agent, j.method, j.port) {
		return false, nil
	}
	if len(r.paths) == 0 {
		return true, nil
	}
	if bad := j.path.Unsafe &^ r.UnsafePaths; bad != 0 {
		f := bad & -bad // the lowest feature, named in the error
		return true, &PathError{Rule: r.Name, Feature: f, Reason: "the path has " + unsafeWhat[bitIndex(f)]}
	}
	if r.matchPath(j.path.Judged) {
		return true, nil
	}
	if r.Action == ActionDeny && j.path.Unsafe != 0 {
		if j.alt == "" {
			j.alt = altForm(j.path.Judged)
		}
		return r.matchPath(j.alt), nil
	}
	return false, nil
}

func bitIndex(f UnsafePaths) int {
	for i := 0; i < unsafeFeatureCount; i++ {
		if f == 1<<i {
			return i
		}
	}
	return 0
}
