// Package deptest checks the import graph against DESIGN.md's package
// table: the "must not" column, as a test.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/airlock/airlock/"

// rules: packages matching a prefix must not depend (transitively, tests
// excluded) on any of the listed packages or prefixes (a trailing "/"
// means the whole tree).
var rules = []struct {
	pkg    string // package path or prefix ending in "/"
	banned []string
}{
	{"vault", []string{"proxy", "proxy/", "policy", "certs", "net/http"}},
	{"policy", []string{"proxy", "proxy/", "vault", "certs"}},
	{"certs", []string{"proxy", "proxy/", "policy", "vault"}},
	{"proxy/", []string{"proxy", "cmd/"}}, // sub-packages never import their parent
	// Connection plumbing and buffers sit below everything else.
	{"proxy/internal/conn", []string{"proxy/", "policy", "vault", "certs"}},
	{"proxy/internal/bufpool", []string{"proxy/", "policy", "vault", "certs"}},
	{"proxy/internal/park", []string{"proxy/", "policy", "vault", "certs"}},
	{"cmd/internal/gctune", []string{"proxy", "proxy/", "policy", "vault", "certs"}},
	// The wire protocols know nothing of policy or credentials.
	{"proxy/internal/h2", []string{"policy", "vault", "certs"}},
	{"proxy/internal/grpcwire", []string{"policy", "vault", "certs"}},
}

// testOnly is the package only _test.go files may import.
const testOnly = "proxy/testkit"

func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, deps := strings.TrimPrefix(f[0], mod), f[1:]
		for _, d := range deps {
			if d == mod+testOnly {
				t.Errorf("%s imports %s, which only tests may import", pkg, d)
			}
		}
		for _, r := range rules {
			if !matches(pkg, r.pkg) {
				continue
			}
			seen++
			for _, d := range deps {
				for _, b := range r.banned {
					if bannedDep(d, b) {
						t.Errorf("%s imports %s (DESIGN.md: must not)", pkg, d)
					}
				}
			}
		}
	}
	if seen < 8 {
		t.Fatalf("only %d packages checked; is the module path right?", seen)
	}
}

func matches(pkg, pattern string) bool {
	if strings.HasSuffix(pattern, "/") {
		return strings.HasPrefix(pkg, pattern)
	}
	return pkg == pattern || strings.HasPrefix(pkg, pattern+"/")
}

// bannedDep reports whether dependency d is banned by b: a module package
// (b relative to the module) or a standard library package.
func bannedDep(d, b string) bool {
	if b == "net/http" {
		return d == b
	}
	rel, ok := strings.CutPrefix(d, mod)
	if !ok {
		return false
	}
	if strings.HasSuffix(b, "/") {
		return strings.HasPrefix(rel, b)
	}
	return rel == b
}
