package proxy_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsoleServeBrowser: headless Chromium against the real serve signs
// in with the URL `airlock console` prints, sees the held request, clicks
// Approve; the held proxied request completes with the key injected and
// the live feed (fed from the audit path) shows it. Screenshot:
// $AIRLOCK_ARTIFACTS (or $TMPDIR/airlock-artifacts)/console-serve.png.
func TestConsoleServeBrowser(t *testing.T) {
	chromium := os.Getenv("AIRLOCK_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("skipped: no chromium at %s (apt install chromium, or set AIRLOCK_CHROMIUM)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipped: node not installed")
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	modules := filepath.Join(strings.TrimSpace(string(gopath)), "airlock-node", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "puppeteer-core")); err != nil {
		t.Skip("skipped: puppeteer-core not installed in " + modules + " (.ci/run installs it; the console package's browser test can too)")
	}
	arts := os.Getenv("AIRLOCK_ARTIFACTS")
	if arts == "" {
		arts = filepath.Join(os.TempDir(), "airlock-artifacts")
	}
	if err := os.MkdirAll(arts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(arts, "console-serve.png")
	os.Remove(shot)

	a := newApprovalEnv(t, "approvals:\n  timeout: 90s\n", "")
	a.serve()
	res := a.getAsync(a.clientFor(), a.up.URL+"/v1/console-held")
	a.waitPending(1, 1)
	loginURL := strings.TrimSpace(a.mustRun("", "console", "--admin", a.adminAddr))
	if !strings.HasPrefix(loginURL, "http://"+a.adminAddr+"/ui/") {
		t.Fatalf("airlock console printed %q", loginURL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "console_serve.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "LOGIN_URL="+loginURL, "CHROMIUM="+chromium,
		"USER_DATA_DIR="+t.TempDir(), "SHOT="+shot, "SECRET="+heldSecret, "HTTPS_PROXY=", "HTTP_PROXY=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			_ = cmd.Wait()
			t.Fatalf("browser: want %q, got %q\n%s", want, lines.Text(), stderr.String())
		}
	}
	expect("ready")
	expect("approved")
	select {
	case r := <-res:
		if r.status != 200 || r.seen.Auth != digest("Bearer "+heldSecret) {
			t.Fatalf("held request after the click: %d %v %s", r.status, r.err, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the click did not release the held request")
	}
	expect("feed")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 5000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if !strings.Contains(a.logs.String(), `"approver":"console`) {
		t.Fatalf("no audit line naming the console as approver")
	}
	t.Logf("screenshot: %s", shot)
}
