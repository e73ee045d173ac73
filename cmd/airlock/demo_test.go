package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs `airlock demo` as a user would and checks the lines it
// promises, its exit code, and that it leaves nothing behind.
func TestDemo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tmp := t.TempDir()
	e.env["TMPDIR"] = tmp
	r := e.ok("", "demo")
	for _, want := range []string{
		"✓ created a throwaway home",
		"✓ started a demo HTTPS API",
		"✓ sealed the key as demo/api-key",
		"✓ airlock is listening on 127.0.0.1:",
		"✓ agent GET /v1/models with no key → 200",
		"[REDACTED:demo/api-key]",
		"✓ agent DELETE /v1/models/demo-1, which the policy does not allow → 403 ACCESS_DENIED",
		"✓ the key appeared nowhere",
		`"action":"inject"`,
		`"code":"ACCESS_DENIED"`,
		"✓ removed ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "✗") {
		t.Errorf("a demo step failed\n%s", r)
	}
	if key := regexp.MustCompile(`sk-demo-[0-9a-f]{24}`).FindString(r.stdout + r.stderr); key != "" {
		t.Errorf("demo printed its key %s", key)
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "airlock-demo-*"))
	if len(left) != 0 {
		t.Errorf("demo left %v behind", left)
	}
	if _, err := os.Stat(e.home); !os.IsNotExist(err) {
		t.Errorf("demo touched AIRLOCK_HOME %s (err %v)", e.home, err)
	}
}
