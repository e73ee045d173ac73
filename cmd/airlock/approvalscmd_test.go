package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/approval"
	"github.com/airlock/airlock/proxy/console"
)

const cliTestToken = "cli-admin-token-0123456789"

// approvalsEnv is a real queue behind the real console admin API on
// loopback; the approvals commands run through the command table.
type approvalsEnv struct {
	q    *approval.Queue
	srv  *httptest.Server
	addr string
}

func newApprovalsEnv(t *testing.T) *approvalsEnv {
	t.Helper()
	st, _ := approval.NewLocalStore("")
	q, err := approval.New(approval.Config{Store: st, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	con, err := console.New(console.Config{Queue: q, AdminToken: cliTestToken})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	savedOut, savedErr := Stdout, Stderr
	t.Cleanup(func() { Stdout, Stderr = savedOut, savedErr })
	t.Setenv("AIRLOCK_HOME", t.TempDir())
	t.Setenv("AIRLOCK_ADMIN_TOKEN", cliTestToken)
	return &approvalsEnv{q: q, srv: srv, addr: strings.TrimPrefix(srv.URL, "http://")}
}

// cli runs airlock with args against the env's admin address.
func (e *approvalsEnv) cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	Stdout, Stderr = &out, &errb
	code := runCLI(append(args, "--admin", e.addr))
	return code, out.String(), errb.String()
}

// hold starts a held request and waits until it is listed.
func (e *approvalsEnv) hold(t *testing.T, req approval.Request) (string, <-chan error) {
	t.Helper()
	errs := make(chan error, 1)
	go func() { _, err := e.q.Wait(context.Background(), req); errs <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ps, _ := e.q.Pending(context.Background())
		if len(ps) == 1 {
			return ps[0].ID, errs
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("request not held")
	return "", nil
}

func TestApprovalsCLIListApproveDeny(t *testing.T) {
	e := newApprovalsEnv(t)
	if code, out, errs := e.cli("approvals"); code != 0 || out != "" || !strings.Contains(errs, "no requests") {
		t.Fatalf("empty list: %d %q %q", code, out, errs)
	}
	req := approval.Request{Agent: "research-bot", Rule: "openai", Method: "POST", Host: "api.openai.com", Path: "/v1/chat/completions"}
	id, held := e.hold(t, req)
	code, out, _ := e.cli("approvals", "list")
	for _, want := range []string{"ID", "AGENT", "METHOD", "HOST", "PATH", "RULE", "AGE", id, "research-bot", "POST", "api.openai.com", "/v1/chat/completions", "openai"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("list lacks %q: %d\n%s", want, code, out)
		}
	}
	if code, out, _ := e.cli("approvals", "--json"); code != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
		t.Fatalf("list --json: %d %s", code, out)
	}
	start := time.Now()
	code, out, errs := e.cli("approvals", "approve", id, "--for", "1h")
	if code != 0 || !strings.Contains(out, "approved "+id+" until ") {
		t.Fatalf("approve: %d %q %q", code, out, errs)
	}
	select {
	case err := <-held:
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("released after %v", el)
		}
	case <-time.After(time.Second):
		t.Fatal("approve did not release the held request within 1s")
	}
	// Remembered for 1h: the next request passes at once.
	if d, err := e.q.Wait(context.Background(), req); err != nil || !d.Remembered || !strings.HasPrefix(d.Approver, "admin-token (cli") {
		t.Fatalf("after --for 1h: %+v %v", d, err)
	}

	id, held = e.hold(t, approval.Request{Agent: "coder", Rule: "github", Method: "DELETE", Host: "api.github.com", Path: "/repos/x"})
	if code, out, errs := e.cli("approvals", "deny", id, "--reason", "not this repo"); code != 0 || out != "denied "+id+"\n" {
		t.Fatalf("deny: %d %q %q", code, out, errs)
	}
	var de *approval.DeniedError
	if err := <-held; !errors.As(err, &de) || de.Reason != "not this repo" {
		t.Fatalf("held after deny: %v", err)
	}
	code, _, errs = e.cli("approvals", "approve", id)
	if code != 1 || !strings.Contains(errs, "airlock: error: no pending approval "+id) || !strings.Contains(errs, "airlock: hint: ") {
		t.Fatalf("approve of decided id: %d %q", code, errs)
	}
}

func TestApprovalsCLIBadInput(t *testing.T) {
	e := newApprovalsEnv(t)
	cases := map[string]struct {
		args []string
		code int
		want string
	}{
		"two remembers":  {[]string{"approvals", "approve", "ap-x", "--once", "--always"}, 2, "only one of"},
		"bad duration":   {[]string{"approvals", "approve", "ap-x", "--for", "soon"}, 2, "not a duration"},
		"no id":          {[]string{"approvals", "approve"}, 2, "missing argument"},
		"unknown sub":    {[]string{"approvals", "approv"}, 2, `unknown command "airlock approvals approv"`},
		"unknown id":     {[]string{"approvals", "deny", "ap-nope"}, 1, "no pending approval ap-nope"},
		"extra argument": {[]string{"approvals", "list", "x"}, 2, "unexpected argument"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errs := e.cli(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "airlock: hint:") {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.want)
			}
		})
	}
	t.Setenv("AIRLOCK_ADMIN_TOKEN", "wrong-token-wrong-token")
	if code, _, errs := e.cli("approvals"); code != 1 || !strings.Contains(errs, "refused the admin token") {
		t.Fatalf("wrong token: %d %q", code, errs)
	}
	t.Setenv("AIRLOCK_ADMIN_TOKEN", cliTestToken)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	var out, errb bytes.Buffer
	Stdout, Stderr = &out, &errb
	if code := runCLI([]string{"approvals", "--admin", deadAddr}); code != 1 || !strings.Contains(errb.String(), "start `airlock serve`") {
		t.Fatalf("unreachable: %d %q", code, errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the watcher and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestApprovalsWatchOneLinePerEntry(t *testing.T) {
	e := newApprovalsEnv(t)
	c := &adminClient{base: e.srv.URL, token: cliTestToken, http: http.DefaultClient}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- watchApprovals(ctx, c, &out, 20*time.Millisecond) }()
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	for i := 0; i < 5; i++ { // 5 requests, one key: one entry, one line
		go e.q.Wait(hctx, approval.Request{Agent: "bot", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/v1/models"})
	}
	go e.q.Wait(hctx, approval.Request{Agent: "bot", Method: "GET", Host: "example.com", Path: "/", Unmatched: true})
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // several more polls: no repeats
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(out.String(), "rule=openai") || !strings.Contains(out.String(), "rule=(no rule)") {
		t.Fatalf("watch printed:\n%s", out.String())
	}
}

func TestConsoleCommandPrintsWorkingLoginURL(t *testing.T) {
	e := newApprovalsEnv(t)
	code, out, errs := e.cli("console")
	u := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(u, e.srv.URL+"/ui/login?token=") || !strings.Contains(errs, "works once") {
		t.Fatalf("console: %d %q %q", code, out, errs)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.Get(u)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login with printed URL: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, _ = client.Get(e.srv.URL + "/ui/api/pending")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("signed-in API: %d", resp.StatusCode)
	}
	resp, _ = http.Get(u)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("printed URL reused: %d, want 401", resp.StatusCode)
	}
}
