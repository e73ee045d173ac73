package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

const matchPolicy = `
version: 1
rules:
  - name: exact
    host: api.example.com
    credential: ex/key
  - name: wild
    host: "*.wild.example.com"
    credential: wild/key
  - name: port
    host: api.example.com:8443
    action: allow
  - name: ip
    host: 10.1.2.3:8080
    action: allow
  - name: v6
    host: "[2001:db8::1]"
    action: allow
  - name: bot-only
    agents: [bot]
    host: agents.example.com
    action: allow
  - name: methods
    host: m.example.com
    methods: [GET, head]
    action: allow
  - name: deep-deny
    host: g.example.com
    paths: ["/admin/**", "/orgs/*/secrets"]
    action: deny
  - name: globs
    host: g.example.com
    paths: ["/v1/*", "/v2/**", "/v3/**/files/*.txt", "/exact/"]
    action: allow
  - name: wild-deeper
    host: "*.deep.wild.example.com"
    action: deny
`

func TestMatch(t *testing.T) {
	p := mustParse(t, matchPolicy)
	cases := map[string]struct {
		agent, method, host string
		port                int
		path                string
		want                string // rule name, "" for none
	}{
		"exact":                  {"a", "GET", "api.example.com", 443, "/", "exact"},
		"exact port 80":          {"a", "GET", "api.example.com", 80, "/", "exact"},
		"exact other port":       {"a", "GET", "api.example.com", 8080, "/", ""},
		"explicit port":          {"a", "GET", "api.example.com", 8443, "/", "port"},
		"upper case host":        {"a", "GET", "API.Example.COM", 443, "/", "exact"},
		"trailing dot":           {"a", "GET", "api.example.com.", 443, "/", "exact"},
		"other host":             {"a", "GET", "api.example.org", 443, "/", ""},
		"suffix is not a match":  {"a", "GET", "xapi.example.com", 443, "/", ""},
		"wild one level":         {"a", "GET", "a.wild.example.com", 443, "/", "wild"},
		"wild two levels":        {"a", "GET", "a.b.wild.example.com", 443, "/", "wild"},
		"wild apex":              {"a", "GET", "wild.example.com", 443, "/", ""},
		"wild lookalike":         {"a", "GET", "a.notwild.example.com", 443, "/", ""},
		"wild first wins":        {"a", "GET", "x.deep.wild.example.com", 443, "/", "wild"},
		"ipv4":                   {"a", "GET", "10.1.2.3", 8080, "/", "ip"},
		"ipv4 wrong port":        {"a", "GET", "10.1.2.3", 443, "/", ""},
		"ipv6 brackets":          {"a", "GET", "[2001:db8::1]", 443, "/", "v6"},
		"ipv6 long form":         {"a", "GET", "2001:0DB8:0:0:0:0:0:1", 443, "/", "v6"},
		"agent listed":           {"bot", "GET", "agents.example.com", 443, "/", "bot-only"},
		"agent not listed":       {"other", "GET", "agents.example.com", 443, "/", ""},
		"empty agent":            {"", "GET", "agents.example.com", 443, "/", ""},
		"method listed":          {"a", "HEAD", "m.example.com", 443, "/", "methods"},
		"method lower case":      {"a", "get", "m.example.com", 443, "/", "methods"},
		"method not listed":      {"a", "POST", "m.example.com", 443, "/", ""},
		"unknown method":         {"a", "PROPFIND", "m.example.com", 443, "/", ""},
		"unknown method no rule": {"a", "PROPFIND", "api.example.com", 443, "/", "exact"},
		"star one segment":       {"a", "GET", "g.example.com", 443, "/v1/models", "globs"},
		"star empty segment":     {"a", "GET", "g.example.com", 443, "/v1/", "globs"},
		"star not two segments":  {"a", "GET", "g.example.com", 443, "/v1/models/x", ""},
		"star needs segment":     {"a", "GET", "g.example.com", 443, "/v1", ""},
		"dstar zero segments":    {"a", "GET", "g.example.com", 443, "/v2", "globs"},
		"dstar many segments":    {"a", "GET", "g.example.com", 443, "/v2/a/b/c", "globs"},
		"dstar not a prefix":     {"a", "GET", "g.example.com", 443, "/v2x", ""},
		"dstar middle zero":      {"a", "GET", "g.example.com", 443, "/v3/files/a.txt", "globs"},
		"dstar middle many":      {"a", "GET", "g.example.com", 443, "/v3/x/y/files/a.txt", "globs"},
		"dstar middle wrong ext": {"a", "GET", "g.example.com", 443, "/v3/x/files/a.bin", ""},
		"trailing slash exact":   {"a", "GET", "g.example.com", 443, "/exact/", "globs"},
		"no trailing slash":      {"a", "GET", "g.example.com", 443, "/exact", ""},
		"deny before allow":      {"a", "GET", "g.example.com", 443, "/admin/users", "deep-deny"},
		"deny dstar zero":        {"a", "GET", "g.example.com", 443, "/admin", "deep-deny"},
		"deny star":              {"a", "GET", "g.example.com", 443, "/orgs/acme/secrets", "deep-deny"},
		"empty host":             {"a", "GET", "", 443, "/", ""},
		"bad v6":                 {"a", "GET", "[zz::1]", 443, "/", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := p.Match(tc.agent, tc.method, tc.host, tc.port, tc.path)
			if got := ruleName(r); got != tc.want {
				t.Errorf("Match(%q, %q, %q, %d, %q) = %q, want %q", tc.agent, tc.method, tc.host, tc.port, tc.path, got, tc.want)
			}
		})
	}
}

func ruleName(r *Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

func TestConnectDecision(t *testing.T) {
	p := mustParse(t, `
version: 1
egress: {unmatched: tunnel}
rules:
  - {name: t, host: tunnel.example.com, action: tunnel}
  - {name: d, host: deny.example.com, action: deny}
  - {name: pd, host: partial.example.com, paths: ["/admin/**"], action: deny}
  - {name: pd-after, host: partial.example.com, credential: p/key}
  - {name: i, host: inject.example.com, credential: i/key, methods: [POST]}
  - {name: a, host: allow.example.com}
  - {name: bot-t, agents: [bot], host: split.example.com, action: tunnel}
  - {name: other-d, host: split.example.com, action: deny}
  - {name: p, host: "ports.example.com:8443", action: tunnel}
`)
	cases := map[string]struct {
		agent, host string
		port        int
		action      string
		rule        string
	}{
		"tunnel":                {"x", "tunnel.example.com", 443, ActionTunnel, "t"},
		"deny":                  {"x", "deny.example.com", 443, ActionDeny, "d"},
		"partial deny is mitm":  {"x", "partial.example.com", 443, ActionAllow, "pd"},
		"inject with methods":   {"x", "inject.example.com", 443, ActionInject, "i"},
		"allow":                 {"x", "allow.example.com", 443, ActionAllow, "a"},
		"agent tunnel":          {"bot", "split.example.com", 443, ActionTunnel, "bot-t"},
		"other agent denied":    {"eve", "split.example.com", 443, ActionDeny, "other-d"},
		"unmatched":             {"x", "nowhere.example.com", 443, ActionTunnel, ""},
		"unmatched port":        {"x", "ports.example.com", 443, ActionTunnel, ""},
		"port match":            {"x", "ports.example.com", 8443, ActionTunnel, "p"},
		"default port mismatch": {"x", "deny.example.com", 8443, ActionTunnel, ""},
		"case and dot":          {"x", "DENY.example.com.", 443, ActionDeny, "d"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			action, r := p.ConnectDecision(tc.agent, tc.host, tc.port)
			if action != tc.action || ruleName(r) != tc.rule {
				t.Errorf("ConnectDecision(%q, %q, %d) = %s, %q; want %s, %q", tc.agent, tc.host, tc.port, action, ruleName(r), tc.action, tc.rule)
			}
		})
	}
	var nilPolicy *Policy
	if a, r := nilPolicy.ConnectDecision("x", "h", 443); a != ActionDeny || r != nil {
		t.Errorf("nil policy: %s %v", a, r)
	}
	if r := nilPolicy.Match("x", "GET", "h", 443, "/"); r != nil {
		t.Errorf("nil policy matched %v", r)
	}
}

func TestCleanPath(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"empty":           {"", "/"},
		"root":            {"/", "/"},
		"clean":           {"/v1/models", "/v1/models"},
		"trailing slash":  {"/v1/", "/v1/"},
		"dotdot":          {"/v1/../admin", "/admin"},
		"dotdot trailing": {"/v1/../admin/", "/admin/"},
		"above root":      {"/../../etc", "/etc"},
		"double slash":    {"//v1//x", "/v1/x"},
		"dot":             {"/./v1/.", "/v1"},
		"relative":        {"v1/x", "/v1/x"},
		"only dots":       {"/..", "/"},
		"dot slash":       {"/v1/./", "/v1/"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := CleanPath(tc.in); got != tc.want {
				t.Errorf("CleanPath(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _ = CleanPath("/v1/chat/completions/") }); n != 0 {
		t.Errorf("CleanPath of a clean path allocates %v times", n)
	}
}

func TestGlob(t *testing.T) {
	cases := map[string]struct {
		pattern string
		match   []string
		miss    []string
	}{
		"literal":      {"/a/b", []string{"/a/b"}, []string{"/a", "/a/b/", "/a/bc"}},
		"star prefix":  {"/a/*.json", []string{"/a/x.json", "/a/.json"}, []string{"/a/x.jsonx", "/a/b/x.json"}},
		"star middle":  {"/a/x*y*z", []string{"/a/xyz", "/a/x1y2z", "/a/xyyzz"}, []string{"/a/xy", "/a/x/y/z"}},
		"dstar only":   {"/**", []string{"/", "/a", "/a/b/c/"}, nil},
		"dstar twice":  {"/**/x/**", []string{"/x", "/a/x", "/a/x/b", "/x/x/x"}, []string{"/", "/a/y/b", "/xx"}},
		"dstar then *": {"/a/**/*", []string{"/a/b", "/a/b/c", "/a/"}, []string{"/b/c"}},
		"root":         {"/", []string{"/", ""}, []string{"/a", "//"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g, msg := compileGlob(tc.pattern, true)
			if msg != "" {
				t.Fatalf("compile %q: %s", tc.pattern, msg)
			}
			for _, s := range tc.match {
				if !g.match(s, false) {
					t.Errorf("%q should match %q", tc.pattern, s)
				}
			}
			for _, s := range tc.miss {
				if g.match(s, false) {
					t.Errorf("%q should not match %q", tc.pattern, s)
				}
			}
		})
	}
}

// TestIndexAgreesWithScan: the host index finds exactly what a linear scan
// over every rule finds, for random policies and hosts.
func TestIndexAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	labels := []string{"a", "b", "c", "api", "x"}
	host := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[rng.IntN(len(labels))]
		}
		return strings.Join(parts, ".")
	}
	for round := 0; round < 50; round++ {
		var b strings.Builder
		b.WriteString("version: 1\nrules:\n")
		for i := 0; i < 40; i++ {
			h := host(2 + rng.IntN(3))
			if rng.IntN(2) == 0 {
				h = "*." + h
			}
			fmt.Fprintf(&b, "  - {name: r%d, host: %q, agents: [g%d], action: allow}\n", i, h, rng.IntN(3))
		}
		p := mustParse(t, b.String())
		for q := 0; q < 200; q++ {
			h, agent := host(1+rng.IntN(6)), fmt.Sprintf("g%d", rng.IntN(3))
			var buf [maxHost]byte
			nh, _ := normHost(&buf, h)
			want := p.scan(nh, agent, methodBit("GET"), 443, "/")
			if got := p.Match(agent, "GET", h, 443, "/"); got != want {
				t.Fatalf("round %d host %q agent %s: index %q, scan %q", round, h, agent, ruleName(got), ruleName(want))
			}
		}
	}
}

// TestDeepHostFallsBack: more wildcard suffixes than the merge holds still
// finds the first rule.
func TestDeepHostFallsBack(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	labels := []string{"l", "k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"}
	for i := len(labels) - 2; i >= 0; i-- { // deepest suffix first
		agent := "other"
		if i == 5 {
			agent = "x"
		}
		fmt.Fprintf(&b, "  - {name: r%d, agents: [%s], host: \"*.%s\", action: allow}\n", i, agent, strings.Join(labels[i:], "."))
	}
	p := mustParse(t, b.String())
	h := "z." + strings.Join(labels, ".")
	if r := p.Match("x", "GET", h, 443, "/"); ruleName(r) != "r5" {
		t.Fatalf("Match(%s) = %q, want r5", h, ruleName(r))
	}
	if _, r := p.ConnectDecision("x", h, 443); ruleName(r) != "r5" {
		t.Fatalf("ConnectDecision(%s) = %q, want r5", h, ruleName(r))
	}
}
