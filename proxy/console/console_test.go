package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/approval"
)

const testToken = "admintoken-0123456789abcdef"

type fixture struct {
	srv   *httptest.Server
	con   *Console
	queue *approval.Queue
	feed  *Feed
	skew  *time.Duration // added to the console's clock
	// attempts has the statuses of POSTs to /ui/api/approvals/.
	attempts *atomicStatuses
}

type fakeBudgets []Budget

func (b fakeBudgets) Budgets(context.Context) ([]Budget, error) { return b, nil }

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	st, err := approval.NewLocalStore("")
	if err != nil {
		t.Fatal(err)
	}
	q, err := approval.New(approval.Config{Store: st, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	var skew time.Duration
	f := &fixture{queue: q, feed: NewFeed(100), skew: &skew}
	cfg := Config{Queue: q, Feed: f.feed, AdminToken: testToken,
		Budgets: fakeBudgets{{Name: "team-monthly", Unit: "usd", Used: 12.5, Limit: 50, WarnAt: 0.8}},
		Now:     func() time.Time { return time.Now().Add(*f.skew) }}
	if mod != nil {
		mod(&cfg)
	}
	f.con, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.attempts = &atomicStatuses{}
	f.srv = httptest.NewServer(f.attempts.record(f.con))
	t.Cleanup(f.srv.Close)
	return f
}

// hold starts a Wait in the background and returns its result channel.
func (f *fixture) hold(t *testing.T, ctx context.Context, req approval.Request) <-chan error {
	errs := make(chan error, 1)
	go func() { _, err := f.queue.Wait(ctx, req); errs <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, _ := f.queue.Pending(context.Background())
		for _, p := range ps {
			if p.Agent == req.Agent && p.Host == req.Host {
				return errs
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("request not pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do sends a request with optional bearer and headers.
func do(t *testing.T, c *http.Client, method, u, bearer string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(data)
}

// login mints a URL with the admin token and redeems it in a cookie jar.
func (f *fixture) login(t *testing.T) (*http.Client, string) {
	t.Helper()
	resp, body := do(t, nil, "POST", f.srv.URL+"/v1/console/login", testToken, nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("mint login: %d %s", resp.StatusCode, body)
	}
	var out struct{ URL string }
	json.Unmarshal([]byte(body), &out)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, body = do(t, c, "GET", out.URL, "", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("cookie %q lacks %s", sc, want)
		}
	}
	resp, body = do(t, c, "GET", f.srv.URL+"/ui/api/session", "", nil, "")
	var s struct{ CSRF string }
	json.Unmarshal([]byte(body), &s)
	if resp.StatusCode != 200 || s.CSRF == "" {
		t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	return c, s.CSRF
}

func TestAPIWithoutCredentialsIs401(t *testing.T) {
	f := newFixture(t, nil)
	for _, ep := range []struct{ method, path string }{
		{"GET", "/ui/api/session"}, {"GET", "/ui/api/pending"}, {"GET", "/ui/api/feed"},
		{"GET", "/ui/api/usage"}, {"GET", "/ui/api/budgets"}, {"POST", "/ui/api/approvals/ap-x/approve"},
		{"POST", "/ui/logout"}, {"GET", "/v1/approvals"}, {"POST", "/v1/approvals/ap-x/deny"}, {"POST", "/v1/console/login"},
	} {
		for name, bearer := range map[string]string{"none": "", "wrong": "admintoken-0123456789abcdeX", "prefix": testToken[:10]} {
			resp, _ := do(t, nil, ep.method, f.srv.URL+ep.path, bearer, nil, "")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s (%s token): %d, want 401", ep.method, ep.path, name, resp.StatusCode)
			}
		}
		if resp, _ := do(t, nil, ep.method, f.srv.URL+ep.path, testToken, nil, ""); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("%s %s with the admin token: 401", ep.method, ep.path)
		}
	}
}

func TestAdminAPIApproveAndDeny(t *testing.T) {
	f := newFixture(t, nil)
	errs := f.hold(t, context.Background(), approval.Request{Agent: "bot", Rule: "openai", Method: "POST", Host: "api.openai.com", Path: "/v1/chat"})
	resp, body := do(t, nil, "GET", f.srv.URL+"/v1/approvals", testToken, nil, "")
	var list struct{ Pending []PendingView }
	json.Unmarshal([]byte(body), &list)
	if resp.StatusCode != 200 || len(list.Pending) != 1 || list.Pending[0].Rule != "openai" {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	id := list.Pending[0].ID
	resp, body = do(t, nil, "POST", f.srv.URL+"/v1/approvals/"+id+"/approve", testToken, nil, `{"remember":"forever"}`)
	if resp.StatusCode != 400 {
		t.Fatalf("bad remember: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, nil, "POST", f.srv.URL+"/v1/approvals/"+id+"/approve", testToken, nil, `{"remember":"once","approver":"cli:alice"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"approver":"admin-token (cli:alice)"`) {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	resp, _ = do(t, nil, "POST", f.srv.URL+"/v1/approvals/"+id+"/deny", testToken, nil, "")
	if resp.StatusCode != 404 {
		t.Fatalf("deny of decided entry: %d, want 404", resp.StatusCode)
	}
	errs = f.hold(t, context.Background(), approval.Request{Agent: "bot", Rule: "openai", Method: "POST", Host: "api.openai.com", Path: "/v1/chat"})
	ps, _ := f.queue.Pending(context.Background())
	resp, body = do(t, nil, "POST", f.srv.URL+"/v1/approvals/"+ps[0].ID+"/deny", testToken, nil, `{"reason":"no"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("deny: %d %s", resp.StatusCode, body)
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "no") {
		t.Fatalf("Wait after deny: %v", err)
	}
}

func TestLoginTokenSingleUseAndTTL(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.LoginTTL = time.Minute })
	u := f.con.LoginURL(f.srv.URL)
	if resp, _ := do(t, nil, "GET", u, "", nil, ""); resp.StatusCode != 200 {
		t.Fatalf("first use: %d", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", u, "", nil, ""); resp.StatusCode != 401 || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("second use: %d, want 401 and no cookie", resp.StatusCode)
	}
	u2 := f.con.LoginURL(f.srv.URL)
	*f.skew = 61 * time.Second
	if resp, _ := do(t, nil, "GET", u2, "", nil, ""); resp.StatusCode != 401 {
		t.Fatalf("expired token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := do(t, nil, "GET", f.srv.URL+"/ui/login?token=", "", nil, ""); resp.StatusCode != 401 {
		t.Fatalf("empty token: %d", resp.StatusCode)
	}
}

func TestCookieCannotUseAdminAPI(t *testing.T) {
	f := newFixture(t, nil)
	c, _ := f.login(t)
	// The cookie is scoped to /ui/, and the /v1/ API ignores cookies anyway:
	// send it by hand.
	u, _ := url.Parse(f.srv.URL + "/ui/")
	ck := c.Jar.Cookies(u)[0]
	resp, _ := do(t, nil, "POST", f.srv.URL+"/v1/console/login", "", map[string]string{"Cookie": ck.Name + "=" + ck.Value}, "")
	if resp.StatusCode != 401 {
		t.Fatalf("cookie on /v1/console/login: %d, want 401", resp.StatusCode)
	}
}

// TestCrossSitePostRefused plays a hostile page: with the victim's cookie
// but without the CSRF token, or from another origin, a decision is refused.
func TestCrossSitePostRefused(t *testing.T) {
	f := newFixture(t, nil)
	c, csrf := f.login(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.hold(t, ctx, approval.Request{Agent: "bot", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/"})
	ps, _ := f.queue.Pending(context.Background())
	approve := f.srv.URL + "/ui/api/approvals/" + ps[0].ID + "/approve"
	origin := f.srv.URL
	cases := map[string]map[string]string{
		"no csrf token":        {"Origin": origin, "Content-Type": "application/json"},
		"wrong csrf token":     {"Origin": origin, csrfHeader: csrf[:len(csrf)-1] + "x"},
		"other origin":         {"Origin": "http://evil.example", csrfHeader: csrf},
		"no origin":            {csrfHeader: csrf},
		"null origin":          {"Origin": "null", csrfHeader: csrf},
		"cross-site fetch":     {"Origin": origin, csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"},
		"same-site not origin": {"Origin": origin, csrfHeader: csrf, "Sec-Fetch-Site": "same-site"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := do(t, c, "POST", approve, "", hdr, `{"remember":"always"}`)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%d %s, want 403", resp.StatusCode, body)
			}
		})
	}
	if ps, _ := f.queue.Pending(context.Background()); len(ps) != 1 {
		t.Fatal("a refused request decided the entry")
	}
	resp, body := do(t, c, "POST", approve, "", map[string]string{"Origin": origin, csrfHeader: csrf, "Sec-Fetch-Site": "same-origin"}, `{"remember":"once"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"approver":"console"`) {
		t.Fatalf("same-origin POST: %d %s", resp.StatusCode, body)
	}
}

// TestRebindingHostRefused: a page on evil.example rebound to 127.0.0.1
// reaches the listener with its own Host; /ui/ does not answer it.
func TestRebindingHostRefused(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Hosts = []string{"airlock.internal"} })
	for host, want := range map[string]int{"evil.example:80": 421, "127.0.0.1:7700": 200, "localhost": 200, "[::1]:7700": 200,
		"airlock.internal:7700": 200, "127.0.0.1.evil.example": 421} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/ui/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	c := &Console{cfg: Config{Hosts: []string{"airlock.internal"}}}
	for host, want := range map[string]bool{"127.0.0.1": true, "127.9.9.9:1": true, "[::1]:7700": true, "::1": true,
		"localhost:7700": true, "LOCALHOST.": true, "airlock.internal": true, "[::1%lo]:7700": false, "[::1%25lo]": false,
		"evil.example": false, "10.0.0.1": false, "0.0.0.0:7700": false, "[::ffff:127.0.0.1]:1": true, "": false,
		"localhost.evil.example": false} {
		if got := c.hostAllowed(host); got != want {
			t.Errorf("hostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestPageIsSelfContained(t *testing.T) {
	f := newFixture(t, nil)
	resp, body := do(t, nil, "GET", f.srv.URL+"/ui/", "", nil, "")
	if resp.StatusCode != 200 || !strings.Contains(body, "Pending approvals") {
		t.Fatalf("/ui/: %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	for _, asset := range []string{"/ui/", "/ui/app.js", "/ui/style.css"} {
		_, b := do(t, nil, "GET", f.srv.URL+asset, "", nil, "")
		if strings.Contains(b, "https://") || strings.Contains(b, "http://") && !strings.Contains(b, "http://www.w3.org/2000/svg") {
			t.Errorf("%s refers to an external URL", asset)
		}
	}
}

// TestNoSecretInConsole feeds a secret through every input the console
// reads (query strings of pending and feed paths) and greps every page and
// API answer for it and for the admin token, in every encoding.
func TestNoSecretInConsole(t *testing.T) {
	const secret = "sk-SECRETvalue-4242"
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.hold(t, ctx, approval.Request{Agent: "bot", Rule: "openai", Method: "GET", Host: "api.openai.com", Path: "/v1/x?key=" + secret})
	f.feed.Add(Event{Agent: "bot", Method: "GET", Host: "api.openai.com", Path: "/v1/y?api_key=" + secret + "#" + secret,
		Rule: "openai", Credential: "openai/api-key", Decision: "inject", Status: 200})
	c, csrf := f.login(t)
	var all bytes.Buffer
	for _, p := range []string{"/ui/", "/ui/app.js", "/ui/style.css", "/ui/api/session", "/ui/api/pending", "/ui/api/feed",
		"/ui/api/feed?agent=bot", "/ui/api/usage", "/ui/api/budgets"} {
		_, b := do(t, c, "GET", f.srv.URL+p, "", nil, "")
		all.WriteString(b)
	}
	for _, p := range []string{"/v1/approvals", "/v1/console/login"} {
		m := "GET"
		if strings.HasSuffix(p, "login") {
			m = "POST"
		}
		_, b := do(t, nil, m, f.srv.URL+p, testToken, nil, "")
		all.WriteString(b)
	}
	if !strings.Contains(all.String(), "/v1/x") || !strings.Contains(all.String(), "openai/api-key") || !strings.Contains(all.String(), csrf) {
		t.Fatal("the answers lack the data fed in: the grep below would prove nothing")
	}
	for _, s := range []string{secret, testToken} {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)),
			url.QueryEscape(s), hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s)))} {
			if strings.Contains(all.String(), form) {
				t.Errorf("console output contains %q", form)
			}
		}
	}
}

func TestFeedAndUsage(t *testing.T) {
	fd := NewFeed(3)
	now := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		fd.Add(Event{Time: now.Add(-time.Duration(i) * time.Minute), Agent: []string{"a", "b"}[i%2], Credential: "openai/api-key", Decision: "inject"})
	}
	fd.Add(Event{Time: now.Add(-2 * time.Hour), Agent: "a", Credential: "gh/token"})
	if got := fd.Recent("", 10); len(got) != 3 || !got[0].Time.Equal(now.Add(-2*time.Hour)) {
		t.Fatalf("recent = %+v", got)
	}
	if got := fd.Recent("b", 10); len(got) != 1 {
		t.Fatalf("recent b = %d", len(got))
	}
	u := fd.Usage(now)
	if len(u.Hour.Agents) != 2 || u.Hour.Agents[0].Name != "a" || u.Hour.Agents[0].Total != 3 || u.Hour.Agents[0].Counts[59] != 1 {
		t.Fatalf("hour agents = %+v", u.Hour.Agents)
	}
	if len(u.Hour.Credentials) != 1 || u.Hour.Credentials[0].Total != 5 {
		t.Fatalf("hour credentials = %+v", u.Hour.Credentials)
	}
	if len(u.Day.Credentials) != 2 || u.Day.Agents[0].Total != 4 {
		t.Fatalf("day = %+v", u.Day)
	}
	if later := fd.Usage(now.Add(25 * time.Hour)); len(later.Day.Agents) != 0 {
		t.Fatalf("a day later = %+v", later.Day)
	}
	big := NewFeed(10)
	for i := 0; i < maxNames+50; i++ {
		big.Add(Event{Time: now, Agent: "agent-" + string(rune('A'+i%26)) + strings.Repeat("x", i/26)})
	}
	if n := len(big.Agents()); n != maxNames+1 {
		t.Fatalf("%d agent names counted, want bounded at %d + other", n, maxNames)
	}
}
