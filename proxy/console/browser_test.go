package console

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	// The hostile site: http://localhost:PORT is another site than
	// http://127.0.0.1:PORT, where the console cookie lives.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := f.srv.URL + "/ui/api/approvals/" + url.PathEscape(r.URL.Query().Get("id")) + "/approve"
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, evilPage, target, target)
	}))
	defer evil.Close()
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	arts := artifactDir(t)
	desktop, phone := filepath.Join(arts, "console-1280x800.png"), filepath.Join(arts, "console-phone.png")
	os.Remove(desktop)
	os.Remove(phone)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "browser.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"), "LOGIN_URL="+f.con.LoginURL(f.srv.URL),
		"CHROMIUM="+chromium, "USER_DATA_DIR="+t.TempDir(), "SHOT_DESKTOP="+desktop, "SHOT_PHONE="+phone, "EVIL_URL="+evilURL+"/")
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
	expect("attacked")
	// 401: the browser kept the session cookie off both cross-site POSTs
	// (SameSite; Chromium's Lax default would too, so browser.js also checks
	// the cookie's attributes). With a cookie they would meet the CSRF
	// check (TestCrossSitePostRefused).
	if got := f.attempts.list(); len(got) < 2 || slices.ContainsFunc(got, func(c int) bool { return c != http.StatusUnauthorized }) {
		t.Fatalf("cross-site approve attempts answered %v, want at least 2, all 401", got)
	}
	if ps, _ := f.queue.Pending(context.Background()); len(ps) != 1 {
		t.Fatal("the cross-site page decided the entry")
	}
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

// evilPage tries a cross-site approve twice (fetch, then a form POST) and
// sets its title to "sent".
const evilPage = `<!doctype html><title>evil</title>
<form id="f" method="POST" action="%s" enctype="text/plain" target="sink"><input name='{"remember":"always","x":"' value='"}'></form>
<iframe name="sink"></iframe>
<script>
fetch(%q, {method: "POST", mode: "no-cors", credentials: "include", body: '{"remember":"always"}'})
  .catch(() => {})
  .finally(() => {
    document.querySelector("iframe").addEventListener("load", () => { document.title = "sent"; });
    document.getElementById("f").submit();
  });
</script>`

// atomicStatuses records the statuses of POSTs to the approvals API.
type atomicStatuses struct {
	mu       sync.Mutex
	statuses []int
}

func (a *atomicStatuses) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/ui/api/approvals/") {
			h.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(sw, r)
		a.mu.Lock()
		a.statuses = append(a.statuses, sw.status)
		a.mu.Unlock()
	})
}

func (a *atomicStatuses) list() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.statuses)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
