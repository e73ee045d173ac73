package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestExamplePolicy keeps the user-facing example valid and complete.
func TestExamplePolicy(t *testing.T) {
	p, err := Load("../policy.example.yaml")
	if err != nil {
		t.Fatalf("policy.example.yaml: %v", err)
	}
	types := map[string]bool{}
	for _, r := range p.Rules {
		types[r.Inject.Type] = true
	}
	for _, typ := range []string{InjectBearer, InjectAPIKey, InjectBasic, InjectCustom, InjectQuery, InjectOAuth2, InjectSigV4, InjectPlaceholder} {
		if !types[typ] {
			t.Errorf("example shows no rule with inject type %s", typ)
		}
	}
	data, _ := os.ReadFile("../policy.example.yaml")
	for _, key := range append(append([]string{}, ruleKeys...), "unmatched:", "allow_networks:", "mode:", "upstream_proxy:", "grants:", "max_ttl:", "region:", "service:", "username:", "param:", "format:",
		"approvals:", "timeout:", "webhook:", "remember:", "budgets:", "scope:", "limit:", "window:", "timezone:", "warn_at:",
		"prices:", "cached_input:", "placeholders") {
		if !strings.Contains(string(data), strings.TrimSuffix(key, ":")+":") {
			t.Errorf("example does not show key %q", key)
		}
	}
}

func TestDefault(t *testing.T) {
	p := Default()
	if p.Egress.Unmatched != ActionDeny || len(p.Rules) != 0 || len(p.Grants) != 0 {
		t.Fatalf("default policy = %+v, want deny and no rules", p)
	}
	if a, r := p.ConnectDecision("bot", "api.openai.com", 443); a != ActionDeny || r != nil {
		t.Errorf("default ConnectDecision = %s, %v", a, r)
	}
	if !strings.Contains(string(DefaultYAML), "# rules:") {
		t.Error("default policy lost its commented examples")
	}
}

func TestParseDefaults(t *testing.T) {
	src := `
version: 1
rules:
  - name: a
    host: API.Example.com
    methods: [get]
    credential: a/key
  - name: b
    host: b.example.com
    credential: b/key
    rate_limit: 10/s
    inject: {type: api_key}
  - name: c
    host: c.example.com
grants:
  - credentials: ["*"]
    actions: [list]
  - credentials: [x/y]
    actions: [use]
    max_ttl: 2m
`
	p := mustParse(t, src)
	sum := sha256.Sum256([]byte(src))
	want := []struct {
		name, host, action string
		inject             Inject
		methods            []string
	}{
		{"a", "api.example.com", ActionInject, Inject{Type: InjectBearer, Header: "Authorization"}, []string{"GET"}},
		{"b", "b.example.com", ActionInject, Inject{Type: InjectAPIKey, Header: DefaultAPIKeyHdr}, nil},
		{"c", "c.example.com", ActionAllow, Inject{}, nil},
	}
	for i, w := range want {
		r := p.Rules[i]
		if r.Name != w.name || r.Host != w.host || r.Action != w.action || r.Inject != w.inject ||
			!slices.Equal(r.Methods, w.methods) || r.Timeout != DefaultTimeout || r.Port != 0 {
			t.Errorf("rule %d = %+v, want %+v", i, r, w)
		}
	}
	checks := map[string]bool{
		"version":         p.Version == 1,
		"hash":            p.Hash == hex.EncodeToString(sum[:]),
		"file":            p.File == "test.yaml",
		"unmatched":       p.Egress.Unmatched == ActionDeny,
		"mode":            p.Egress.Mode == ModeEnforce,
		"rule position":   p.Rules[1].Line == 8 && p.Rules[1].Column == 5,
		"burst default":   p.Rules[1].RateLimit.Burst == 10 && p.Rules[1].RateLimit.Per == time.Second,
		"limit":           p.Rules[1].RateLimit.Limit() == rate.Limit(10),
		"no limit":        p.Rules[0].RateLimit.Limit() == rate.Inf,
		"max_ttl default": p.Grants[0].MaxTTL == DefaultMaxTTL,
		"max_ttl string":  p.Grants[1].MaxTTL == 2*time.Minute,
		"rule names":      slices.Equal(p.RuleNames(), []string{"a", "b", "c"}),
		"credentials":     slices.Equal(p.Credentials(), []string{"a/key", "b/key"}),
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s: wrong; policy %+v", name, p)
		}
	}
}

func TestParseValues(t *testing.T) {
	p := mustParse(t, `
version: 1
egress:
  unmatched: tunnel
  mode: report
  allow_networks: ["127.0.0.0/8", "::1", 10.1.2.3/8]
rules:
  - name: lim
    host: a.example.com:8443
    rate_limit: 60/m
    burst: 5
    timeout: 1500ms
    credential: a/key
    insecure_http: true
    headers: {anthropic-version: 2023-06-01, x-n: 7}
`)
	nets := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
	r := p.Rules[0]
	switch {
	case p.Egress.Unmatched != ActionTunnel || p.Egress.Mode != ModeReport:
		t.Errorf("egress = %+v", p.Egress)
	case !slices.Equal(p.Egress.AllowNetworks, nets):
		t.Errorf("allow_networks = %v, want %v", p.Egress.AllowNetworks, nets)
	case r.Port != 8443 || r.Host != "a.example.com":
		t.Errorf("host/port = %s %d", r.Host, r.Port)
	case *r.RateLimit != RateLimit{Count: 60, Per: time.Minute, Burst: 5} || r.RateLimit.Limit() != rate.Limit(1):
		t.Errorf("rate limit = %+v", r.RateLimit)
	case r.Timeout != 1500*time.Millisecond || !r.InsecureHTTP:
		t.Errorf("timeout/insecure = %v %v", r.Timeout, r.InsecureHTTP)
	case r.Headers["anthropic-version"] != "2023-06-01" || r.Headers["x-n"] != "7":
		t.Errorf("headers = %v", r.Headers)
	}
}

func TestGoodTestdata(t *testing.T) {
	files, _ := fs.Glob(os.DirFS("testdata/good"), "*.yaml")
	if len(files) == 0 {
		t.Fatal("no good policies")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if _, err := Load("testdata/good/" + f); err != nil {
				t.Fatal(err)
			}
		})
	}
	p, _ := Load("testdata/good/aliases.yaml")
	if !slices.Equal(p.Rules[1].Agents, []string{"bot-1", "bot-2"}) || p.Rules[1].Host != "b.example.com" {
		t.Errorf("alias rule = %+v", p.Rules[1])
	}
	if p.Rules[2].Host != "2001:db8::1" || p.Rules[2].Port != 8443 {
		t.Errorf("v6 rule = %s %d", p.Rules[2].Host, p.Rules[2].Port)
	}
}

func TestErrorTypes(t *testing.T) {
	_, err := Parse("p.yaml", []byte("version: 1\nbogus: 1\n"))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("errors.As ErrorList: %v", err)
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 2 || one.Column != 1 || one.File != "p.yaml" {
		t.Fatalf("errors.As *Error = %+v", one)
	}
	if got, want := one.Error(), `p.yaml:2:1: unknown key "bogus"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if _, err := Load("testdata/does-not-exist.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load missing file: %v", err)
	}
}

func TestAppliesTo(t *testing.T) {
	cases := map[string]struct {
		agents []string
		agent  string
		want   bool
	}{
		"every agent": {nil, "anyone", true},
		"listed":      {[]string{"a", "b"}, "b", true},
		"not listed":  {[]string{"a", "b"}, "c", false},
		"case counts": {[]string{"a"}, "A", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := (&Rule{Agents: tc.agents}).AppliesTo(tc.agent); got != tc.want {
				t.Errorf("AppliesTo(%q) = %v", tc.agent, got)
			}
		})
	}
}

func TestEmptySections(t *testing.T) {
	p := mustParse(t, "version: 1\negress:\n  allow_networks:\nrules:\n# - name: later\ngrants:\n")
	if len(p.Rules) != 0 || len(p.Grants) != 0 || p.Egress.Unmatched != ActionDeny {
		t.Errorf("policy = %+v", p)
	}
}

// TestImports: policy touches neither the vault nor the network layer.
func TestImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := goparser.ParseFile(fset, f, nil, goparser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			if strings.HasPrefix(path, "github.com/airlock/") || path == "net/http/httputil" || path == "os/exec" {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
