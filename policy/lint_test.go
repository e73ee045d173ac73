package policy

import (
	"os"
	"strings"
	"testing"
)

// TestLint compares Lint's warnings for testdata/lint/policy.yaml with the
// golden testdata/lint/policy.warn (-update rewrites it).
func TestLint(t *testing.T) {
	p, err := Load("testdata/lint/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv := Inventory{Credentials: []string{"openai/api-key", "github/token"}, Agents: []string{"research-bot"}}
	var b strings.Builder
	for _, w := range Lint(p, inv) {
		checkPositioned(t, "testdata/lint/policy.yaml", w.String())
		b.WriteString(w.String() + "\n")
	}
	got := b.String()
	if *update {
		if err := os.WriteFile("testdata/lint/policy.warn", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/lint/policy.warn")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("warnings differ\n--- got\n%s--- want\n%s", got, want)
	}
}

// TestLintUnknownInventory: a locked vault and no keys/ directory skip the
// checks instead of warning about everything.
func TestLintUnknownInventory(t *testing.T) {
	p, err := Load("testdata/lint/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ws := Lint(p, Inventory{})
	for _, w := range ws {
		if !strings.Contains(w.Msg, "not metered") {
			t.Errorf("unexpected warning with an unknown inventory: %s", w)
		}
	}
	if len(ws) != 1 {
		t.Errorf("got %d warnings, want the one budget warning", len(ws))
	}
	if Lint(p, Inventory{Credentials: []string{}, Agents: []string{"research-bot", "coder", "ghost"}}) == nil {
		t.Error("an empty vault must warn about every credential")
	}
}
