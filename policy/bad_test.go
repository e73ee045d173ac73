package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the current output")

// TestBadPolicies parses each testdata/bad/NAME.yaml and compares the full
// error text with NAME.err (golden; -update rewrites them).
func TestBadPolicies(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad policies: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := Parse(file, data)
			var list ErrorList
			if !errors.As(perr, &list) || len(list) == 0 {
				t.Fatalf("Parse(%s) = %v, want an ErrorList", file, perr)
			}
			got := perr.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
			for _, e := range list {
				checkPositioned(t, file, e.Error())
			}
		})
	}
}

// checkPositioned asserts msg starts with "file:line:col: ".
func checkPositioned(t testing.TB, file, msg string) {
	t.Helper()
	rest, ok := strings.CutPrefix(msg, file+":")
	if !ok {
		t.Fatalf("error %q does not start with %q", msg, file)
	}
	line, rest, _ := strings.Cut(rest, ":")
	col, rest, _ := strings.Cut(rest, ":")
	if !allDigits(line) || !allDigits(col) || !strings.HasPrefix(rest, " ") || line == "0" || col == "0" {
		t.Fatalf("error %q lacks a line:col", msg)
	}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TestSecretsNotEchoed: the upstream proxy password never appears in errors
// or in printed policies.
func TestSecretsNotEchoed(t *testing.T) {
	_, err := Load("testdata/bad/bad_egress.yaml")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes the proxy password or is nil: %v", err)
	}
	_, err = Load("testdata/bad/bad_sections.yaml")
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("error echoes the webhook URL or is nil: %v", err)
	}
	p, err := Load("testdata/good/headers_types.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{sprintf("%v", p), sprintf("%+v", p), sprintf("%#v", p.Egress), p.Egress.String()} {
		if strings.Contains(s, "pass@") {
			t.Errorf("printed policy holds the password: %s", s)
		}
	}
	if p.Egress.UpstreamProxy != "http://user:pass@proxy.corp:3128" {
		t.Errorf("UpstreamProxy = %q", p.Egress.UpstreamProxy)
	}
}

// TestWalkBudget: alias fan-out is cut off quickly with a positioned error.
func TestWalkBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nx: &a [")
	for i := 0; i < 1000; i++ {
		b.WriteString("z,")
	}
	b.WriteString("z]\nrules:\n")
	for i := 0; i < 1000; i++ {
		b.WriteString("  - {name: r, host: h.example.com, agents: *a}\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Fatalf("err = %v, want a too-complex error", err)
	}
	checkPositioned(t, "bomb.yaml", err.(ErrorList)[0].Error())
}

// TestErrorCap: a file with thousands of problems reports a bounded list.
func TestErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for i := 0; i < 500; i++ {
		b.WriteString("  - {bad: 1}\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != maxErrors {
		t.Fatalf("got %d errors, want %d", len(list), maxErrors)
	}
}
