package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestShippedPrices(t *testing.T) {
	p := ShippedPrices()
	if len(p.Models()) < 20 {
		t.Fatalf("only %d models", len(p.Models()))
	}
	cases := map[string]string{
		"gpt-4o":                     "gpt-4o",
		"gpt-4o-2024-08-06":          "gpt-4o",
		"gpt-4o-mini-2024-07-18":     "gpt-4o-mini",
		"gpt-5-mini-2025-08-07":      "gpt-5-mini",
		"claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
		"claude-3-5-haiku-latest":    "claude-3-5-haiku",
		"gpt-4o-audio-preview":       OtherModel, // a different model, not guessed from its prefix
		"gpt-4o-2024-08-06-ft":       OtherModel,
		"":                           OtherModel,
		"llama-3.3-70b":              OtherModel,
	}
	for pass := range 2 { // the second from the memo
		for model, want := range cases {
			if got, _, _ := p.Lookup(model); got != want {
				t.Errorf("pass %d: Lookup(%q) = %q, want %q", pass, model, got, want)
			}
		}
	}
	over, err := p.With(map[string]Price{"gpt-4o": {Input: 1, Output: 2}, "my-model": {Input: 3, Output: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if _, pr, _ := over.Lookup("gpt-4o-2024-08-06"); pr.Input != 1 {
		t.Errorf("override not applied: %+v", pr)
	}
	if _, err := p.With(map[string]Price{"x": {Input: -1}}); err == nil {
		t.Error("negative price accepted")
	}
	if _, err := ParsePrices([]byte("version: 1\nmodels:\n  a: {input: 1, ouptut: 2}\n")); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestCost(t *testing.T) {
	pr := Price{Input: 2.5, Output: 10, CachedInput: 1.25}
	got := pr.Cost(Tokens{Input: 1_000_000, CachedInput: 400_000, Output: 100_000, Reasoning: 50_000})
	want := int64((0.6*2.5 + 0.4*1.25 + 0.1*10) * 1e9)
	if got != want {
		t.Errorf("cost %d, want %d", got, want)
	}
}

func TestAddIncludeUsage(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"absent":        {`{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		"spaced":        {`{ "model": "m", "stream": true }`, `{ "model": "m", "stream": true,"stream_options":{"include_usage":true} }`},
		"false":         {`{"stream":true,"stream_options":{"include_usage":false}}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		"other options": {`{"stream_options":{"x":1},"stream":true}`, `{"stream_options":{"include_usage":true,"x":1},"stream":true}`},
		"empty options": {`{"stream_options":{},"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`},
		"null options":  {`{"stream_options":null,"stream":true}`, `{"stream_options":{"include_usage":true},"stream":true}`},
		"duplicate":     {`{"stream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`, `{"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}`},
		"escaped key":   {`{"stream":true,"a\"b":"}{"}`, `{"stream":true,"a\"b":"}{","stream_options":{"include_usage":true}}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := addIncludeUsage([]byte(tc.in))
			if !ok || string(got) != tc.want {
				t.Errorf("got %s (%v), want %s", got, ok, tc.want)
			}
		})
	}
	if _, ok := addIncludeUsage([]byte(`{"stream_options":"x"}`)); ok {
		t.Error("edited a string stream_options")
	}
}

func TestRemoveMember(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"last":   {`{"a":1,"usage":null}`, `{"a":1}`},
		"first":  {`{"usage":null,"a":1}`, `{"a":1}`},
		"middle": {`{"a":1, "usage": null, "b":2}`, `{"a":1, "b":2}`},
		"only":   {`{"usage":null}`, `{}`},
	}
	for name, tc := range cases {
		ms, _, _, ok := objectMembers([]byte(tc.in))
		if !ok {
			t.Fatalf("%s: not an object", name)
		}
		if got := removeMember([]byte(tc.in), ms, find([]byte(tc.in), ms, "usage")); string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", name, got, tc.want)
		}
	}
}

// TestInspectRequest: limits are read, oversize bodies pass untouched.
func TestInspectRequest(t *testing.T) {
	mk := func(body string) *http.Request {
		r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		return r
	}
	r := mk(`{"model":"o3","max_completion_tokens":777,"stream":true}`)
	info, err := InspectRequest(r, EndpointChat, 0)
	if err != nil || info.MaxOutput != 777 || info.Model != "o3" || !info.Rewritten {
		t.Fatalf("info %+v err %v", info, err)
	}
	b, _ := io.ReadAll(r.Body)
	if r.ContentLength != int64(len(b)) || !bytes.Contains(b, []byte(`"include_usage":true`)) {
		t.Errorf("body %s len %d", b, r.ContentLength)
	}
	big := `{"model":"o3","stream":true,"messages":[{"content":"` + strings.Repeat("x", 5000) + `"}]}`
	r = mk(big)
	info, err = InspectRequest(r, EndpointChat, 1024)
	if err != nil || !info.Oversize || info.Rewritten || info.InputEstimate < int64(len(big))/3 {
		t.Fatalf("oversize info %+v err %v", info, err)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != big {
		t.Error("oversize body changed")
	}
	r = mk(`{"model":"claude-opus-4-5","max_tokens":64000}`)
	if info, _ := InspectRequest(r, EndpointMessages, 0); info.MaxOutput != 64000 || info.Rewritten {
		t.Errorf("messages %+v", info)
	}
}

func TestEndpointOf(t *testing.T) {
	cases := []struct {
		d      Dialect
		method string
		path   string
		want   Endpoint
	}{
		{DialectOpenAI, "POST", "/v1/chat/completions", EndpointChat},
		{DialectOpenAI, "POST", "/openai/deployments/x/chat/completions", EndpointChat},
		{DialectOpenAI, "GET", "/v1/chat/completions", EndpointNone},
		{DialectOpenAI, "POST", "/v1/responses", EndpointResponses},
		{DialectOpenAI, "POST", "/v1/responses/resp_1/cancel", EndpointNone},
		{DialectOpenAI, "POST", "/v1/embeddings", EndpointEmbeddings},
		{DialectOpenAI, "POST", "/v1/files", EndpointNone},
		{DialectAnthropic, "POST", "/v1/messages", EndpointMessages},
		{DialectAnthropic, "POST", "/v1/messages/count_tokens", EndpointNone},
		{DialectNone, "POST", "/v1/chat/completions", EndpointNone},
	}
	for _, c := range cases {
		if got := EndpointOf(c.d, c.method, c.path); got != c.want {
			t.Errorf("%s %s %s = %v, want %v", c.d, c.method, c.path, got, c.want)
		}
	}
	for host, want := range map[string]Dialect{"api.openai.com": DialectOpenAI, "my.openai.azure.com": DialectOpenAI,
		"api.anthropic.com": DialectAnthropic, "example.com": DialectNone} {
		if got := DefaultDialect(host); got != want {
			t.Errorf("DefaultDialect(%s) = %s", host, got)
		}
	}
}

// TestWindows: calendar windows follow the budget's time zone; rolling
// 24h resets when the excess ages out.
func TestWindows(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	now := time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC) // 19:30 in New York
	cases := map[string]struct {
		b       Budget
		end     time.Time
		buckets int
	}{
		"hour utc":    {Budget{Name: "a", Window: "hour"}, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 1},
		"day utc":     {Budget{Name: "a", Window: "day"}, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 1},
		"day ny":      {Budget{Name: "a", Window: "day", Location: ny}, time.Date(2026, 4, 1, 0, 0, 0, 0, ny), 1},
		"month utc":   {Budget{Name: "a", Window: "month"}, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 1},
		"month ny":    {Budget{Name: "a", Window: "month", Location: ny}, time.Date(2026, 4, 1, 0, 0, 0, 0, ny), 1},
		"rolling 24h": {Budget{Name: "a", Window: "24h"}, now.Add(5 * time.Minute), 288},
	}
	for name, tc := range cases {
		buckets, end := tc.b.window(now)
		if !end.Equal(tc.end) || len(buckets) != tc.buckets {
			t.Errorf("%s: end %v (%d buckets), want %v (%d)", name, end, len(buckets), tc.end, tc.buckets)
		}
	}
	b := Budget{Name: "r", Window: "24h", Tokens: 100}
	per := make([]int64, 288)
	per[10], per[200] = 60, 40 // full; need 30 → bucket 10 must age out
	got := b.resetAt(now, time.Time{}, per, 0, 30)
	want := now.Truncate(rollingBucket).Add(-time.Duration(287-10)*rollingBucket + 24*time.Hour)
	if !got.Equal(want) {
		t.Errorf("rolling reset %v, want %v", got, want)
	}
	for _, bad := range []Budget{{Name: "x", Window: "day", Tokens: 1}, {Name: "x", Agent: "a", Window: "week", Tokens: 1},
		{Name: "x", Agent: "a", Window: "day"}, {Name: "x", Agent: "a", Window: "day", Tokens: 1, USD: 1}, {Name: "x", Agent: "a", Window: "day", Tokens: 1, WarnAt: 1.5}} {
		if bad.Validate() == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

// TestRestartKeepsCounters: usage and budget state survive a restart of
// the file store; a budget spent before the restart stays spent.
func TestRestartKeepsCounters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.json")
	up := newFake(t)
	body := `{"model":"gpt-4o","max_tokens":100}`
	b := []Budget{{Name: "day", Agent: "bot", Tokens: usageA.Prompt + usageA.Completion + 50, Window: "day", WarnAt: 0.5}}
	st, err := OpenFile(path, FileOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, up, st, b, openaiTarget)
	g.post(t, "/v1/chat/completions", body)
	before := waitRows(t, st, 1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}
	st2, err := OpenFile(path, FileOptions{FlushEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	after := st2.Rows()
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	g2 := newGateway(t, up, st2, b, openaiTarget)
	resp, _ := g2.post(t, "/v1/chat/completions", body)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("budget forgotten across restart: status %d", resp.StatusCode)
	}
	state, err := LoadState(path)
	if err != nil || len(state.Budgets) != 1 || state.Budgets[0].Name != "day" {
		t.Fatalf("state budgets %+v %v", state, err)
	}
}

// TestStateFileCorrupt: a broken file is refused with a way out.
func TestStateFileCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := OpenFile(path, FileOptions{}); err == nil || !strings.Contains(err.Error(), "move the file away") {
		t.Fatalf("err %v", err)
	}
}

// TestReservationExpires: a reservation nobody ends stops counting at its
// expiry.
func TestReservationExpires(t *testing.T) {
	s := NewMemStore()
	now := time.Now()
	c := []Claim{{Budget: "b", Buckets: []string{"b@1"}, Limit: 10, Amount: 10}}
	if err := s.Reserve(context.Background(), Reservation{ID: "1", Claims: c, Now: now, Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var over *OverLimitError
	if err := s.Reserve(context.Background(), Reservation{ID: "2", Claims: c, Now: now}); !errors.As(err, &over) {
		t.Fatalf("second reservation: %v", err)
	}
	if err := s.Reserve(context.Background(), Reservation{ID: "3", Claims: c, Now: now.Add(2 * time.Minute)}); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestUnpricedModelsBounded: unknown model names from upstreams cannot
// grow the state without bound.
func TestUnpricedModelsBounded(t *testing.T) {
	s := NewMemStore()
	for i := range 200 {
		s.Commit(context.Background(), "", nil, Record{Time: time.Now(), Model: "m" + strings.Repeat("x", i), Unpriced: true, Outcome: OutcomeOK})
	}
	if n := len(s.Rows()); n != maxUnpricedPerDay+1 {
		t.Errorf("%d rows", n)
	}
}

// TestHugeEventBounded: a hostile or huge upstream event passes through
// unchanged while the meter keeps bounded buffers.
func TestHugeEventBounded(t *testing.T) {
	big := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("x", 5<<20) + "\"}}],\"usage\":null}\n\ndata: [DONE]\n\n")
	var tl tally
	s := newSSEMeter(EndpointChat, DialectOpenAI, &tl, true)
	var out []byte
	for rest := big; len(rest) > 0; {
		n := min(32<<10, len(rest))
		s.feed(rest[:n])
		rest = rest[n:]
		out = append(out, s.out...)
		s.out = s.out[:0]
		if cap(s.hold) > 2*maxHold+64<<10 {
			t.Fatalf("held %d bytes", cap(s.hold))
		}
		for i := range s.scan.caps {
			if cap(s.scan.caps[i].buf) > 2*maxCapture {
				t.Fatalf("capture %d holds %d bytes", i, cap(s.scan.caps[i].buf))
			}
		}
	}
	s.end()
	out = append(out, s.out...)
	if !bytes.Equal(out, big) {
		t.Fatal("huge event changed")
	}
}

// TestUSDBudgetUnknownModel: a model outside the price table is reserved
// at the table's highest price (so it cannot slip through a USD budget)
// and charged nothing (its cost is not guessed).
func TestUSDBudgetUnknownModel(t *testing.T) {
	up := newFake(t)
	up.model = "mystery-1"
	st := NewMemStore()
	mx := ShippedPrices().MaxPrice()
	body := `{"model":"mystery-1","max_tokens":1000}`
	est := nanoUSD((int64(len(body))+2)/3, mx.Input) + nanoUSD(1000, mx.Output)
	b := []Budget{{Name: "usd", Agent: "bot", USD: float64(est-1) / 1e9, Window: "day"}}
	g := newGateway(t, up, st, b, openaiTarget)
	if resp, _ := g.post(t, "/v1/chat/completions", body); resp.StatusCode != 429 {
		t.Fatalf("status %d: reservation below the table's highest price", resp.StatusCode)
	}
	b[0].USD = float64(est+1) / 1e9
	g2 := newGateway(t, up, st, b, openaiTarget)
	if resp, _ := g2.post(t, "/v1/chat/completions", body); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rows := waitRows(t, st, 1)
	if !rows[0].Unpriced || rows[0].CostNano != 0 || rows[0].Tokens.Output != usageA.Completion || rows[0].Model != "mystery-1" {
		t.Errorf("row %s", fmtRow(rows[0]))
	}
}

// TestWarningWebhook: crossing warn_at logs, counts and POSTs once per
// window.
func TestWarningWebhook(t *testing.T) {
	notes := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]any
		_ = json.NewDecoder(r.Body).Decode(&n)
		notes <- n
	}))
	defer hook.Close()
	up := newFake(t)
	st := NewMemStore()
	reg := prometheus.NewRegistry()
	mt, _ := NewMetrics(reg)
	b := []Budget{{Name: "w", Agent: "bot", Tokens: 10 * (usageA.Prompt + usageA.Completion), Window: "hour", WarnAt: 0.15}}
	m, err := New(Config{Store: st, Budgets: b, Metrics: mt, Webhook: hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		req := httptest.NewRequest("POST", up.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","max_tokens":10}`))
		tk, err := m.Admit(context.Background(), openaiTarget, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		req.RequestURI = ""
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		tk.Wrap(resp)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	select {
	case n := <-notes:
		if n["budget"] != "w" || n["event"] != "budget_warning" {
			t.Errorf("note %v", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
	select {
	case n := <-notes:
		t.Errorf("second warning in one window: %v", n)
	case <-time.After(100 * time.Millisecond):
	}
	if got := testutil.ToFloat64(mt.BudgetWarnings.WithLabelValues("w")); got != 1 {
		t.Errorf("warnings metric %v", got)
	}
	if got := testutil.ToFloat64(mt.BudgetUsedRatio.WithLabelValues("w")); got < 0.29 || got > 0.31 {
		t.Errorf("ratio %v, want 0.3", got)
	}
}

// TestLenientRequestFields (hostile): fields a provider's lenient parser
// accepts but encoding/json refuses must not switch metering off.
func TestLenientRequestFields(t *testing.T) {
	cases := map[string]struct {
		body    string
		stream  bool
		max     int64
		rewrite bool
	}{
		"float max_tokens":  {`{"model":"gpt-4o","stream":true,"max_tokens":100.0}`, true, 100, true},
		"string stream":     {`{"model":"gpt-4o","stream":"true","max_tokens":"250"}`, true, 250, true},
		"huge max_tokens":   {`{"model":"gpt-4o","max_tokens":9e18}`, false, maxOutputCap, false},
		"negative":          {`{"model":"gpt-4o","max_tokens":-5}`, false, 0, false},
		"usage string true": {`{"stream":1,"stream_options":{"include_usage":"yes"}}`, true, 0, true},
	}
	for name, tc := range cases {
		r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(tc.body))
		info, err := InspectRequest(r, EndpointChat, 0)
		if err != nil || info.Stream != tc.stream || info.MaxOutput != tc.max || info.Rewritten != tc.rewrite {
			t.Errorf("%s: %+v %v", name, info, err)
		}
	}
}

// TestCompleteAnswerWithoutUsageCharged (hostile): a 2xx stream that ends
// normally without usage (the upstream ignored include_usage, or never
// saw it) charges the reservation instead of running free.
func TestCompleteAnswerWithoutUsageCharged(t *testing.T) {
	up := newFake(t)
	up.noUsage = true
	st := NewMemStore()
	b := []Budget{{Name: "b", Agent: "bot", Tokens: 1_000_000, Window: "day"}}
	g := newGateway(t, up, st, b, openaiTarget)
	body := `{"model":"gpt-4o","stream":true,"max_tokens":500}`
	g.post(t, "/v1/chat/completions", body)
	rows := waitRows(t, st, 1)
	if rows[0].NoUsage != 1 || rows[0].Tokens != (Tokens{}) {
		t.Errorf("row %s", fmtRow(rows[0]))
	}
	used, reserved, _ := st.Window(context.Background(), "b", b[0].mustWindow(time.Now()))
	if want := int64(500 + (len(body)+2)/3); used != want || reserved != 0 {
		t.Errorf("used %d reserved %d, want %d charged", used, reserved, want)
	}
}

// TestRewrittenRequestLength: the rewritten body's length is in
// ContentLength and in a Content-Length header the request had; GetBody
// replays the rewritten bytes when the request had one and stays nil
// when it had none (as a server's request); Close closes the original.
func TestRewrittenRequestLength(t *testing.T) {
	const body = `{"model":"o3","stream":true}`
	for _, tc := range []struct {
		name      string
		getBody   bool
		clHeader  bool
		rewritten bool
	}{
		{"server request", false, true, true},
		{"client request", true, false, true},
		{"both", true, true, true},
		{"not rewritten", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := body
			if !tc.rewritten {
				b = `{"model":"o3","stream":true,"stream_options":{"include_usage":true}}`
			}
			orig := &closeCounter{Reader: strings.NewReader(b)}
			r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			r.Body, r.ContentLength, r.GetBody = orig, int64(len(b)), nil
			if tc.getBody {
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(b)), nil }
			}
			delete(r.Header, "Content-Length")
			if tc.clHeader {
				r.Header["Content-Length"] = []string{strconv.Itoa(len(b))}
			}
			info, err := InspectRequest(r, EndpointChat, 0)
			if err != nil || info.Rewritten != tc.rewritten {
				t.Fatalf("info %+v err %v", info, err)
			}
			sent, _ := io.ReadAll(r.Body)
			if r.ContentLength != int64(len(sent)) {
				t.Errorf("ContentLength %d, body %d bytes", r.ContentLength, len(sent))
			}
			if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(sent)); tc.clHeader && got != want || !tc.clHeader && got != "" {
				t.Errorf("Content-Length header %q, body %d bytes", got, len(sent))
			}
			switch {
			case tc.getBody:
				rc, err := r.GetBody()
				if err != nil {
					t.Fatal(err)
				}
				if again, _ := io.ReadAll(rc); !bytes.Equal(again, sent) && tc.rewritten {
					t.Errorf("GetBody replays %s, sent %s", again, sent)
				}
			case r.GetBody != nil:
				t.Error("GetBody set on a request that had none")
			}
			if err := r.Body.Close(); err != nil || orig.closed != 1 {
				t.Errorf("Close: %v, original closed %d times", err, orig.closed)
			}
		})
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// TestTicketSize: a ticket is allocated for every metered request; what
// only admission and the record need stays on their stacks, so it fits
// the 640-byte size class (it was 896 with the claims and charges in it).
func TestTicketSize(t *testing.T) {
	if n := unsafe.Sizeof(Ticket{}); n > 640 {
		t.Errorf("Ticket is %d bytes, more than the 640-byte size class", n)
	}
}

// TestReserveKeepsNoClaims: a local store's hold copies what it needs of
// the claims (the meter passes them on its stack), for any number of
// budgets; releasing gives every in-flight total back.
func TestReserveKeepsNoClaims(t *testing.T) {
	for n := range 5 {
		s := NewMemStore()
		claims := make([]Claim, n)
		for i := range claims {
			claims[i] = Claim{Budget: fmt.Sprintf("b%d", i), Buckets: []string{fmt.Sprintf("b%d@0", i)}, Limit: 100, Amount: int64(10 + i)}
		}
		now := time.Unix(1000, 0)
		if err := s.Reserve(context.Background(), Reservation{ID: "r", Claims: claims, Now: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for i := range claims {
			claims[i] = Claim{Budget: "overwritten", Amount: 1 << 40} // the caller's stack moves on
		}
		for i := range n {
			if got := s.inflight[fmt.Sprintf("b%d", i)]; got != int64(10+i) {
				t.Fatalf("%d claims: in flight on b%d %d, want %d", n, i, got, 10+i)
			}
		}
		if err := s.Release(context.Background(), "r"); err != nil || len(s.inflight) != 0 || len(s.holds) != 0 {
			t.Fatalf("%d claims: after release %v, in flight %v, holds %d", n, err, s.inflight, len(s.holds))
		}
	}
}

// Answers naming ever new models cannot grow the price memo past its
// bound, and a name that no longer fits is still priced.
func TestPricesMemoBounded(t *testing.T) {
	p := ShippedPrices()
	for i := range 3 * maxResolved {
		if name, _, ok := p.Lookup(fmt.Sprintf("model-%d", i)); ok || name != OtherModel {
			t.Fatalf("model-%d priced as %q", i, name)
		}
	}
	if n := p.known.Len(); n > len(p.m)+maxResolved {
		t.Fatalf("memo holds %d names, bound %d", n, len(p.m)+maxResolved)
	}
	if name, pr, ok := p.Lookup("gpt-4o-2024-11-20"); !ok || name != "gpt-4o" || pr != p.m["gpt-4o"] {
		t.Fatalf("after the flood: %q %+v %v", name, pr, ok)
	}
}

func TestLaxInt(t *testing.T) {
	for raw, want := range map[string]int64{
		"256": 256, "0": 0, "000000007": 7, "999999999": 999999999, "1000000000": 1000000000,
		"99999999999": maxOutputCap, "-1": 0, "1e3": 1000, "1.5": 2, `"512"`: 512, " 7 ": 7, "": 0, "abc": 0, "12a": 0,
	} {
		if got := laxInt(json.RawMessage(raw)); got != want {
			t.Errorf("laxInt(%q) = %d, want %d", raw, got, want)
		}
	}
}

// The fast path reads what ParseFloat reads.
func FuzzLaxIntSame(f *testing.F) {
	for _, s := range []string{"256", "0", "007", "123456789", "1234567890", "-5", "1e2", `"64"`, " 1", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if got, want := laxInt(json.RawMessage(raw)), parsedInt(json.RawMessage(raw)); got != want {
			t.Fatalf("laxInt(%q) = %d, ParseFloat's reading %d", raw, got, want)
		}
	})
}
