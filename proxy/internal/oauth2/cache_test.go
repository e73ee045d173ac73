package oauth2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/errcode"
	"github.com/airlock/airlock/proxy/testkit"
	"github.com/airlock/airlock/vault"
	"github.com/prometheus/client_golang/prometheus"
)

const testClientSecret = "client-secret-9f2c"

// fakeClock is a settable clock for the token cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenEndpoint is a loopback TLS token endpoint; answer decides each reply
// (n counts from 1).
type tokenEndpoint struct {
	*httptest.Server
	n      atomic.Int32
	mu     sync.Mutex
	answer func(n int32, r *http.Request) (int, string)
	last   *http.Request
	form   map[string][]string
}

func newTokenEndpoint(t *testing.T, answer func(n int32, r *http.Request) (int, string)) *tokenEndpoint {
	te := &tokenEndpoint{answer: answer}
	te.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := te.n.Add(1)
		_ = r.ParseForm()
		te.mu.Lock()
		te.last, te.form = r, r.PostForm
		answer := te.answer
		te.mu.Unlock()
		status, body := answer(n, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(te.Close)
	return te
}

func (te *tokenEndpoint) setAnswer(f func(n int32, r *http.Request) (int, string)) {
	te.mu.Lock()
	defer te.mu.Unlock()
	te.answer = f
}

func issue(lifetime int) func(n int32, r *http.Request) (int, string) {
	return func(n int32, r *http.Request) (int, string) {
		return 200, fmt.Sprintf(`{"access_token":"tok%d","token_type":"Bearer","expires_in":%d}`, n, lifetime)
	}
}

func newTestCache(t *testing.T, te *tokenEndpoint) (*Cache, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := New(Config{Transport: te.Client().Transport, Vault: func() *vault.Vault { return nil }, Metrics: testMetrics(),
		Log: zap.NewNop(), Now: clock.now})
	return c, clock
}

func oauthCred(t *testing.T, te *tokenEndpoint, method string) *vault.Credential {
	t.Helper()
	c, err := vault.NewOAuth2Credential("graph/app", vault.OAuth2Settings{
		TokenURL: te.URL + "/token", ClientID: "app id", Scopes: []string{"https://graph.microsoft.com/.default"}, AuthMethod: method,
	}, vault.OAuth2Secret{ClientSecret: testClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitUntil(t *testing.T, what string, fn func() bool) {
	t.Helper()
	testkit.WaitUntil(t, 5*time.Second, what, fn)
}

func TestTokenSingleFlight(t *testing.T) {
	gate := make(chan struct{})
	te := newTokenEndpoint(t, func(n int32, r *http.Request) (int, string) {
		<-gate
		return issue(3600)(n, r)
	})
	c, _ := newTestCache(t, te)
	cred := oauthCred(t, te, "")
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := c.token(context.Background(), cred)
			if err == nil && tok != "tok1" {
				err = fmt.Errorf("token %q", tok)
			}
			errs <- err
		}()
	}
	waitUntil(t, "the token request", func() bool { return te.n.Load() >= 1 })
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := te.n.Load(); n != 1 {
		t.Fatalf("%d token requests for 50 concurrent callers, want 1", n)
	}
}

// TestTokenLateFlight: a caller that saw no token starts its flight only
// after another flight has ended (the window between its look and its
// flight). It gets that flight's token, with no second exchange.
func TestTokenLateFlight(t *testing.T) {
	te := newTokenEndpoint(t, issue(3600))
	c, _ := newTestCache(t, te)
	cred := oauthCred(t, te, "")
	if _, err := c.token(context.Background(), cred); err != nil {
		t.Fatal(err)
	}
	set, err := vault.OAuth2SettingsOf(cred)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.get(cacheKey(cred.Path, set), cred, set) // the late flight
	if err != nil || tok != "tok1" {
		t.Fatalf("late flight: %q, %v; want tok1", tok, err)
	}
	if n := te.n.Load(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

func TestTokenRefreshAheadAndFailClosed(t *testing.T) {
	te := newTokenEndpoint(t, issue(100))
	c, clock := newTestCache(t, te)
	cred := oauthCred(t, te, "")
	ctx := context.Background()
	mustToken := func(want string) {
		t.Helper()
		tok, err := c.token(ctx, cred)
		if err != nil || tok != want {
			t.Fatalf("token = %q, %v; want %q", tok, err, want)
		}
	}
	mustToken("tok1")
	clock.add(50 * time.Second)
	mustToken("tok1")
	clock.add(45 * time.Second) // 95 s: inside the 10 s refresh-ahead window of a 100 s token
	mustToken("tok1")           // served at once, refreshed in the background
	waitUntil(t, "the background refresh", func() bool { return len(c.Live(cred.Path)) == 1 && c.Live(cred.Path)[0] == "tok2" })
	mustToken("tok2")
	if n := te.n.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}

	te.setAnswer(func(int32, *http.Request) (int, string) { return 503, `{"error":"temporarily_unavailable"}` })
	clock.add(101 * time.Second) // tok2 expired, endpoint down
	for i := range 3 {
		tok, err := c.token(ctx, cred)
		var e *errcode.Error
		if tok != "" || !errors.As(err, &e) || e.Status != 502 || e.Code != errcode.UpstreamError || e.Upstream != "temporarily_unavailable" {
			t.Fatalf("attempt %d: token %q, err %v: want 502 UPSTREAM_ERROR and never the expired token", i, tok, err)
		}
	}
	if n := te.n.Load(); n != 3 {
		t.Fatalf("%d token requests: failures must back off, want 3", n)
	}
	te.setAnswer(issue(100))
	clock.add(backoffMin)
	mustToken("tok4")
}

func TestTokenEndpointErrors(t *testing.T) {
	cases := map[string]struct {
		status   int
		body     string
		code     string
		upstream string
		result   string
	}{
		"invalid client":  {401, `{"error":"invalid_client","error_description":"bad secret client-secret-9f2c"}`, errcode.CredentialInvalid, "invalid_client", "rejected"},
		"invalid grant":   {400, `{"error":"invalid_grant"}`, errcode.CredentialInvalid, "invalid_grant", "rejected"},
		"server error":    {500, `oops`, errcode.UpstreamError, "", "error"},
		"hostile code":    {503, `{"error":"busy\r\n<script>"}`, errcode.UpstreamError, "busyscript", "error"},
		"empty document":  {200, `{}`, errcode.UpstreamError, "", "malformed"},
		"empty token":     {200, `{"access_token":"","expires_in":60}`, errcode.UpstreamError, "", "malformed"},
		"not json":        {200, `access_token=x`, errcode.UpstreamError, "", "malformed"},
		"wrong type":      {200, `{"access_token":"x","token_type":"mac"}`, errcode.UpstreamError, "", "malformed"},
		"zero expires_in": {200, `{"access_token":"x","expires_in":0}`, errcode.UpstreamError, "", "malformed"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			te := newTokenEndpoint(t, func(int32, *http.Request) (int, string) { return tc.status, tc.body })
			c, _ := newTestCache(t, te)
			_, err := c.token(context.Background(), oauthCred(t, te, ""))
			var e *errcode.Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Upstream != tc.upstream || e.Status != 502 {
				t.Fatalf("err = %#v, want 502 %s upstream %q", err, tc.code, tc.upstream)
			}
			if strings.Contains(string(e.Body()), testClientSecret) {
				t.Fatalf("error body leaks the client secret: %s", e.Body())
			}
			if got := counterValue(t, c.metrics, "airlock_oauth2_token_requests_total", tc.result); got != 1 {
				t.Fatalf("token requests{result=%s} = %v", tc.result, got)
			}
		})
	}
}

// testMetrics are the cache's collectors on a registry of their own.
func testMetrics() Metrics {
	m := Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "airlock_oauth2_token_requests_total"}, []string{"credential", "result"}),
		Expiry:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "airlock_oauth2_token_expiry_seconds"}, []string{"credential"}),
	}
	return m
}

func counterValue(t *testing.T, m Metrics, name, result string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Requests, m.Expiry)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return mm.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestTokenClientAuth(t *testing.T) {
	cases := map[string]struct {
		method    string
		basic     bool
		formID    string
		formSecre string
	}{
		"basic": {vault.AuthMethodBasic, true, "", ""},
		"post":  {vault.AuthMethodPost, false, "app id", testClientSecret},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			te := newTokenEndpoint(t, issue(60))
			c, _ := newTestCache(t, te)
			if _, err := c.token(context.Background(), oauthCred(t, te, tc.method)); err != nil {
				t.Fatal(err)
			}
			te.mu.Lock()
			defer te.mu.Unlock()
			user, pass, ok := te.last.BasicAuth()
			if ok != tc.basic || ok && (user != "app+id" || pass != testClientSecret) {
				t.Fatalf("basic auth = %q, %v; want %v", user, ok, tc.basic)
			}
			f := te.form
			if got := strings.Join(f["client_id"], ","); got != tc.formID {
				t.Fatalf("form client_id %q, want %q", got, tc.formID)
			}
			if got := strings.Join(f["client_secret"], ","); got != tc.formSecre {
				t.Fatal("form client_secret wrong")
			}
			if f["grant_type"][0] != vault.GrantClientCredentials || f["scope"][0] != "https://graph.microsoft.com/.default" {
				t.Fatalf("form %v", f)
			}
		})
	}
}

func tokenFixtures(t testing.TB) map[string][]byte {
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = b
	}
	return out
}

func TestParseTokenResponse(t *testing.T) {
	valid := map[string]time.Duration{"ok": time.Hour, "ok-string-expiry": 3599 * time.Second, "ok-no-expiry": defaultLifetime}
	for name, body := range tokenFixtures(t) {
		t.Run(name, func(t *testing.T) {
			tr, err := parseTokenResponse(200, "application/json; charset=utf-8", body)
			want, ok := valid[name]
			if !ok {
				if !errors.Is(err, errTokenMalformed) {
					t.Fatalf("err = %v, want errTokenMalformed", err)
				}
				if strings.Contains(err.Error(), "at-123") {
					t.Fatalf("error quotes the token: %v", err)
				}
				return
			}
			if err != nil || tr.AccessToken != "at-123" || tr.lifetime != want {
				t.Fatalf("parse = %+v, %v", tr, err)
			}
		})
	}
	if _, err := parseTokenResponse(200, "text/html", []byte(`{"access_token":"x"}`)); !errors.Is(err, errTokenMalformed) {
		t.Fatalf("html content type accepted: %v", err)
	}
}

// FuzzParseTokenResponse: whatever a token endpoint answers, parsing does
// not panic, and an accepted token is safe to put in a header and has a
// positive lifetime.
func FuzzParseTokenResponse(f *testing.F) {
	for _, b := range tokenFixtures(f) {
		f.Add(200, b)
	}
	f.Add(401, []byte(`{"error":"invalid_client"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tr, err := parseTokenResponse(status, "application/json", body)
		if err != nil {
			var ee *endpointError
			if errors.As(err, &ee) && (len(ee.code) > 64 || sanitizeCode(ee.code) != ee.code) {
				t.Fatalf("unsanitised error code %q", ee.code)
			}
			return
		}
		if status != 200 || tr.AccessToken == "" || !printableASCII(tr.AccessToken) || tr.lifetime <= 0 {
			t.Fatalf("accepted %+v for status %d", tr, status)
		}
		var raw map[string]any
		if json.Unmarshal(body, &raw) != nil {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
	})
}
