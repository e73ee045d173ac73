package policy

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy has n rules over n/4 hosts and a few wildcards, with agents,
// methods and paths, so a lookup touches several rules for its host.
func bigPolicy(tb testing.TB, n int) *Policy {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < n; i++ {
		host := fmt.Sprintf("api%d.example.com", i/4)
		if i%50 == 0 {
			host = fmt.Sprintf("*.svc%d.example.com", i)
		}
		fmt.Fprintf(&b, "  - name: r%d\n    agents: [bot%d, shared]\n    host: %q\n    methods: [GET, POST]\n    paths: [\"/v%d/**\", \"/x/*/y\"]\n    credential: c/k%d\n",
			i, i%4, host, i%4, i)
	}
	return mustParse(tb, b.String())
}

func BenchmarkMatch1000Rules(b *testing.B) {
	p := bigPolicy(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if p.Match("bot3", "POST", "API200.example.com.", 443, "/v3/chat/completions") == nil {
			b.Fatal("no match")
		}
	}
}

func BenchmarkMatch1000RulesMiss(b *testing.B) {
	p := bigPolicy(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if p.Match("bot3", "POST", "a.b.nowhere.example.com", 443, "/v3/x") != nil {
			b.Fatal("match")
		}
	}
}

func BenchmarkConnectDecision1000Rules(b *testing.B) {
	p := bigPolicy(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if a, _ := p.ConnectDecision("shared", "x.y.svc500.example.com", 443); a != ActionInject {
			b.Fatal(a)
		}
	}
}

func BenchmarkParse1000Rules(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("version: 1\nrules:\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "  - {name: r%d, host: api%d.example.com, paths: [\"/v1/**\"], credential: c/k%d}\n", i, i, i)
	}
	src := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMatchAllocs pins the hot path at zero allocations.
func TestMatchAllocs(t *testing.T) {
	p := bigPolicy(t, 200)
	cases := map[string]func(){
		"match hit":     func() { p.Match("bot3", "POST", "API20.example.com.", 443, "/v3/chat") },
		"match wild":    func() { p.Match("bot0", "GET", "a.b.svc100.example.com", 443, "/x/1/y") },
		"match miss":    func() { p.Match("bot3", "POST", "nowhere.example.com", 443, "/") },
		"match v6":      func() { p.Match("bot3", "POST", "[2001:db8::1]", 443, "/") },
		"connect":       func() { p.ConnectDecision("bot1", "api3.example.com", 443) },
		"allowed":       func() { p.Allowed("bot1", "c/k1", "use") },
		"clean path ok": func() { CleanPath("/v1/models") },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, fn); n != 0 {
				t.Errorf("%v allocations, want 0", n)
			}
		})
	}
}

func BenchmarkJudge1000Rules(b *testing.B) {
	p := bigPolicy(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		if r, _, err := p.Judge("bot3", "POST", "API200.example.com.", 443, "/v3/chat/completions?stream=true"); r == nil || err != nil {
			b.Fatal("no match")
		}
	}
}

func BenchmarkNormalizePathRewrite(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NormalizePath("/v1//users/caf%C3%A9/%7bid%7d"); err != nil {
			b.Fatal(err)
		}
	}
}
