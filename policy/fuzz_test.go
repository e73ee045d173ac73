package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, every error is positioned, a parsed
// policy matches without panicking, and the host index agrees with a scan.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	files = append(files, "../policy.example.yaml", "default.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 {
				t.Fatalf("error is %T, want a non-empty ErrorList", err)
			}
			for _, e := range list {
				checkPositioned(t, "fuzz.yaml", e.Error())
			}
			return
		}
		if p.Version != 1 || p.Hash == "" {
			t.Fatalf("parsed policy without version/hash: %+v", p)
		}
		for _, r := range p.Rules {
			host := strings.TrimPrefix(r.Host, "*")
			if strings.HasPrefix(host, ".") {
				host = "x" + host
			}
			for _, h := range []string{host, strings.ToUpper(host) + ".", "a.b." + host} {
				var buf [maxHost]byte
				nh, ok := normHost(&buf, h)
				got := p.Match("fuzz", "GET", h, 443, "/v1/x")
				if ok {
					if want := p.scan(nh, "fuzz", methodBit("GET"), 443, "/v1/x"); got != want {
						t.Fatalf("host %q: index %q, scan %q", h, ruleName(got), ruleName(want))
					}
				}
				p.ConnectDecision("fuzz", h, 443)
				_ = p.Explain("fuzz", "POST", "https://"+h+"/v1/x").String()
				if jr, _, err := p.Judge("fuzz", "GET", h, 443, "/v1/x"); err != nil || jr != got {
					t.Fatalf("host %q: Judge %q (%v), Match %q", h, ruleName(jr), err, ruleName(got))
				}
				_, _, _ = p.Judge("fuzz", "GET", h, 443, "/v1/a%2Fb;c")
				_ = p.NoMatchDetail("fuzz", "DELETE", h, 443, "/zz")
			}
		}
		for _, w := range Lint(p, Inventory{Credentials: []string{}, Agents: []string{}}) {
			checkPositioned(t, "fuzz.yaml", w.String())
		}
		for _, g := range p.Grants {
			for _, c := range g.Credentials {
				p.Allowed("fuzz", strings.ReplaceAll(c, "*", "x"), "use")
			}
		}
	})
}
