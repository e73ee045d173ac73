package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quickstartMarker marks a README code block the tests run.
const quickstartMarker = "<!-- test: quickstart -->"

// markedBlocks returns the bodies of the fenced code blocks that directly
// follow a quickstartMarker line. A "$ " prompt at the start of a line is
// dropped.
func markedBlocks(md []byte) []string {
	var blocks []string
	var cur *strings.Builder
	marked := false
	sc := bufio.NewScanner(bytes.NewReader(md))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && strings.HasPrefix(trimmed, "```"):
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(strings.TrimPrefix(line, "$ ") + "\n")
		case marked && strings.HasPrefix(trimmed, "```"):
			cur = &strings.Builder{}
		}
		marked = cur == nil && trimmed == quickstartMarker
	}
	return blocks
}

func TestReadmeBlocks(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("testdata", "readme", "README.md"))
	must(t, err)
	got := markedBlocks(md)
	want := []string{"# a comment\nairlock init\nprintf '%s' \"sk-x\" | airlock vault set a/b\n", "airlock vault list\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("blocks %q, want %q", got, want)
	}
	runQuickstart(t, got) // the fixture runs like the README does
}

// TestReadmeQuickstart runs the README's marked quick-start blocks
// literally, so the README cannot drift from the CLI.
func TestReadmeQuickstart(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	blocks := markedBlocks(md)
	if len(blocks) == 0 {
		t.Fatalf("README.md has no code block marked %q: mark the quick start so this test runs it", quickstartMarker)
	}
	runQuickstart(t, blocks)
}

// runQuickstart runs blocks in order in one `bash -euo pipefail`, in a
// temp dir with the freshly built airlock first on PATH and a throwaway
// home. A test API on loopback is offered as $UPSTREAM_URL and
// $UPSTREAM_CA; background jobs are killed at the end.
func runQuickstart(t *testing.T, blocks []string) {
	t.Helper()
	dir := t.TempDir()
	api := newTestAPI(t)
	env := []string{
		"PATH=" + filepath.Dir(airlockBin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir, "AIRLOCK_HOME=" + filepath.Join(dir, "airlock-home"),
		"AIRLOCK_PASSPHRASE=" + testPassphrase, "AIRLOCK_INSECURE_FAST_KDF=1",
		"AIRLOCK_LISTEN=" + freeAddr(t), "AIRLOCK_ADMIN=" + freeAddr(t),
		"UPSTREAM_URL=" + api.url, "UPSTREAM_CA=" + api.caFile,
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "PATH" && k != "HOME" && !strings.HasPrefix(k, "AIRLOCK_") && !strings.Contains(strings.ToLower(k), "proxy") {
			env = append(env, kv)
		}
	}
	script := strings.Join(blocks, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader("")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // `airlock serve &` and friends
	}
	if err != nil {
		t.Fatalf("quick start failed: %v\nscript:\n%s\noutput:\n%s", err, script, out.String())
	}
	if strings.Contains(out.String(), "panic") {
		t.Fatalf("quick start output has a panic:\n%s", out.String())
	}
}
