package console

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/approval"
)

// puppeteerDir finds (or installs, with npm) puppeteer-core in
// $(go env GOPATH)/airlock-node, where .ci/run installs it; "" with a reason
// when it cannot.
func puppeteerDir(t *testing.T) (string, string) {
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", "go env GOPATH: " + err.Error()
	}
	dir := filepath.Join(strings.TrimSpace(string(gopath)), "airlock-node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "puppeteer-core")); err == nil {
		return dir, ""
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", "npm not installed"
	}
	t.Logf("installing puppeteer-core into %s", dir)
	out, err := exec.Command("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", dir, "puppeteer-core@24").CombinedOutput()
	if err != nil {
		return "", "npm install puppeteer-core: " + err.Error() + ": " + string(out)
	}
	return dir, ""
}

// artifactDir is where screenshots go: $AIRLOCK_ARTIFACTS, or a directory
// under the system temp dir that outlives the test.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("AIRLOCK_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "airlock-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInBrowser: headless Chromium signs in with the one-time URL,
// sees a request held by the real queue appear, clicks Approve and the held
// Wait returns approved.
func TestConsoleInBrowser(t *testing.T) {
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
	dir, why := puppeteerDir(t)
	if dir == "" {
		t.Skip("skipped: " + why)
	}

	f := newFixture(t, nil)
	for i, a := range []string{"research-bot", "coder", "research-bot"} {
		f.feed.Add(Event{Time: time.Now().Add(-time.Duration(2-i) * time.Minute), Agent: a, Method: "POST", Host: "api.openai.com",
			Path: "/v1/chat/completions", Rule: "openai", Credential: "openai/api-key", Decision: "inject", Status: 200, DurationMS: 812})
	}
	arts := artifactDir(t)
	desktop, phone := filepath.Join(arts, "console-1280x800.png"), filepath.Join(arts, "console-phone.png")
	os.Remove(desktop)
	os.Remove(phone)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "browser.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "LOGIN_URL="+f.con.LoginURL(f.srv.URL),
		"CHROMIUM="+chromium, "USER_DATA_DIR="+t.TempDir(), "SHOT_DESKTOP="+desktop, "SHOT_PHONE="+phone)
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
			cmd.Wait()
			t.Fatalf("browser: want %q, got %q\n%s", want, lines.Text(), stderr.String())
		}
	}
	expect("ready")

	type result struct {
		d   approval.Decision
		err error
	}
	held := make(chan result, 1)
	go func() {
		d, err := f.queue.Wait(ctx, approval.Request{Agent: "research-bot", Rule: "openai", Method: "POST",
			Host: "api.openai.com", Path: `/v1/chat/<img src=x onerror="window.__xss=1">`})
		held <- result{d, err}
	}()
	expect("approved")
	select {
	case r := <-held:
		if r.err != nil || !r.d.Approved || r.d.Approver != "console" || r.d.Remember != approval.RememberOnce {
			t.Fatalf("held Wait = %+v, %v", r.d, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not released by the click")
	}
	expect("done")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	t.Logf("screenshots: %s %s", desktop, phone)
	for _, p := range []string{desktop, phone} {
		if st, err := os.Stat(p); err != nil || st.Size() < 5000 {
			t.Fatalf("screenshot %s: %v", p, err)
		}
	}
}
