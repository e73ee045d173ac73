package usage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var openaiTarget = Target{Agent: "bot", Rule: "openai", Credential: "openai/api-key", Dialect: DialectOpenAI}

// TestMeterCountsExactly: every figure the meter records equals the
// fake's usage, for every endpoint and body shape.
func TestMeterCountsExactly(t *testing.T) {
	u := usageA
	oa := Tokens{Input: u.Prompt, Output: u.Completion, CachedInput: u.Cached, Reasoning: u.Reasoning}
	anth := fakeUsage{Prompt: 21, Completion: 503, Cached: 2048, CacheWrite: 512}
	anthTok := Tokens{Input: 21 + 2048 + 512, Output: 503, CachedInput: 2048, CacheWrite: 512}
	cases := map[string]struct {
		dialect Dialect
		path    string
		body    string
		model   string // served by the fake
		usage   fakeUsage
		want    Tokens
		table   string // price table name
	}{
		"chat json":              {DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "gpt-4o-2024-08-06", u, oa, "gpt-4o"},
		"chat sse include_usage": {DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[]}`, "gpt-4o-2024-08-06", u, oa, "gpt-4o"},
		"chat sse rewritten":     {DialectOpenAI, "/v1/chat/completions", `{"model":"o3-mini","stream":true,"messages":[]}`, "o3-mini-2025-01-31", u, oa, "o3-mini"},
		"azure chat sse":         {DialectOpenAI, "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", `{"stream":true,"messages":[]}`, "gpt-4o-2024-11-20", u, oa, "gpt-4o"},
		"responses json":         {DialectOpenAI, "/v1/responses", `{"model":"gpt-5","input":"hi"}`, "gpt-5-2025-08-07", u, oa, "gpt-5"},
		"responses sse":          {DialectOpenAI, "/v1/responses", `{"model":"gpt-5","input":"hi","stream":true}`, "gpt-5-2025-08-07", u, oa, "gpt-5"},
		"embeddings":             {DialectOpenAI, "/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, "text-embedding-3-small", u, Tokens{Input: u.Prompt}, "text-embedding-3-small"},
		"anthropic json":         {DialectAnthropic, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}`, "claude-sonnet-4-5-20250929", anth, anthTok, "claude-sonnet-4-5"},
		"anthropic sse":          {DialectAnthropic, "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[]}`, "claude-sonnet-4-5-20250929", anth, anthTok, "claude-sonnet-4-5"},
		"compatible host":        {DialectOpenAI, "/api/v1/chat/completions", `{"model":"llama-3.3-70b","messages":[]}`, "llama-3.3-70b", u, oa, OtherModel},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			up := newFake(t)
			up.model, up.usage = tc.model, tc.usage
			if tc.dialect == DialectAnthropic {
				up.model = tc.model
			}
			st := NewMemStore()
			tg := openaiTarget
			tg.Dialect = tc.dialect
			g := newGateway(t, up, st, nil, tg)
			resp, _ := g.post(t, tc.path, tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			rows := waitRows(t, st, 1)
			if len(rows) != 1 {
				t.Fatalf("rows: %v", rows)
			}
			r := rows[0]
			if r.Tokens != tc.want || r.NoUsage != 0 || r.Partial != 0 {
				t.Errorf("recorded %+v, want %+v", r, tc.want)
			}
			wantModel := tc.table
			if tc.table == OtherModel {
				wantModel = tc.model
				if !r.Unpriced || r.CostNano != 0 {
					t.Errorf("unknown model must be flagged and cost nothing: %s", fmtRow(r))
				}
			} else {
				_, pr, _ := ShippedPrices().Lookup(tc.table)
				if r.CostNano != pr.Cost(tc.want) || r.CostNano == 0 {
					t.Errorf("cost %d, want %d", r.CostNano, pr.Cost(tc.want))
				}
			}
			if r.Model != wantModel {
				t.Errorf("model %q, want %q", r.Model, wantModel)
			}
			for kind, n := range map[string]int64{KindInput: tc.want.Input, KindOutput: tc.want.Output,
				KindCachedInput: tc.want.CachedInput, KindReasoning: tc.want.Reasoning, KindCacheWrite: tc.want.CacheWrite} {
				if got := tokenMetric(g, tc.table, kind); got != float64(n) {
					t.Errorf("metric %s = %v, want %d", kind, got, n)
				}
			}
		})
	}
}

// directStream fetches a stream from the fake without airlock.
func directStream(t *testing.T, up *fake, body string) []byte {
	t.Helper()
	resp, err := http.Post(up.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// TestStrippedStreamByteIdentical: an agent that did not ask for usage
// receives byte for byte what the provider sends without include_usage,
// while the upstream got include_usage and airlock counted its usage; an
// agent that asked gets the provider's stream unchanged.
func TestStrippedStreamByteIdentical(t *testing.T) {
	for name, body := range map[string]string{
		"no stream_options":    `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		"include_usage false":  `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[]}`,
		"other stream_options": `{"model":"gpt-4o","stream_options":{"include_obfuscation":false},"stream":true}`,
		"dup stream_options":   `{"model":"gpt-4o","stream_options":{"include_usage":true},"stream":true,"stream_options":{"include_usage":false}}`,
		"agent asked":          `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`,
	} {
		t.Run(name, func(t *testing.T) {
			up := newFake(t)
			want := directStream(t, up, body)
			st := NewMemStore()
			g := newGateway(t, up, st, nil, openaiTarget)
			_, got := g.post(t, "/v1/chat/completions", body)
			if !bytes.Equal(got, want) {
				t.Fatalf("relayed stream differs from the direct one\n got: %q\nwant: %q", got, want)
			}
			var sent struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			_ = json.Unmarshal(up.body(), &sent)
			if !sent.StreamOptions.IncludeUsage {
				t.Errorf("upstream body lacks include_usage: %s", up.body())
			}
			rows := waitRows(t, st, 1)
			if rows[0].Tokens.Output != usageA.Completion || rows[0].Tokens.Input != usageA.Prompt {
				t.Errorf("counted %+v", rows[0])
			}
			if name != "agent asked" && bytes.Contains(got, []byte(`"usage"`)) {
				t.Errorf("usage leaked to the agent")
			}
			// metering off: the same bytes (the meter changes nothing else)
			g.meterOn = false
			_, off := g.post(t, "/v1/chat/completions", body)
			if !bytes.Equal(off, want) {
				t.Errorf("stream without metering differs")
			}
		})
	}
}

// TestEventByEventDelivery: each SSE event reaches the agent before the
// fake sends the next one (rewritten and not).
func TestEventByEventDelivery(t *testing.T) {
	for name, body := range map[string]string{
		"rewritten":   `{"model":"gpt-4o","stream":true}`,
		"passthrough": `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`,
	} {
		t.Run(name, func(t *testing.T) {
			up := newFake(t)
			seen := make(chan string)
			next := make(chan struct{})
			up.between = func(i int) {
				select {
				case <-next:
				case <-time.After(2 * time.Second):
					t.Errorf("chunk %d did not reach the agent before the next was due", i)
				}
			}
			g := newGateway(t, up, NewMemStore(), nil, openaiTarget)
			go func() {
				resp, err := http.Post(g.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					close(seen)
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if line := sc.Text(); strings.HasPrefix(line, "data: ") {
						seen <- line
					}
				}
				close(seen)
			}()
			recv := func() string {
				select {
				case l := <-seen:
					return l
				case <-time.After(10 * time.Second):
					t.Fatal("no event")
				}
				return ""
			}
			recv() // role chunk
			for i, c := range up.chunks {
				line := recv()
				wc, _ := json.Marshal(c)
				if !strings.Contains(line, string(wc)) {
					t.Fatalf("event %d = %q, want content %s", i, line, wc)
				}
				select {
				case next <- struct{}{}: // the fake may send the next chunk only now
				case <-time.After(10 * time.Second):
					t.Fatalf("event %d arrived only after the fake gave up waiting for it", i)
				}
			}
			for range seen {
			}
		})
	}
}

// TestAbortedStreamReleases: an agent that leaves mid-stream is recorded
// as no usage and its reservation is released.
func TestAbortedStreamReleases(t *testing.T) {
	up := newFake(t)
	up.hangAt = 2
	st := NewMemStore()
	b := []Budget{{Name: "b", Agent: "bot", Tokens: 1_000_000, Window: "day"}}
	g := newGateway(t, up, st, b, openaiTarget)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", g.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true,"max_tokens":100}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, reserved, _ := st.Window(ctx, "b", nil); reserved == 0 {
		t.Fatal("no reservation while the stream runs")
	}
	br := bufio.NewReader(resp.Body)
	_, _ = br.ReadString('\n')
	cancel()
	resp.Body.Close()
	<-up.userLeft
	rows := waitRows(t, st, 1)
	if rows[0].NoUsage != 1 || rows[0].Tokens != (Tokens{}) {
		t.Errorf("want one no-usage record, got %s", fmtRow(rows[0]))
	}
	if _, reserved, _ := st.Window(context.Background(), "b", nil); reserved != 0 {
		t.Errorf("reservation not released: %d", reserved)
	}
	if got := testutil.ToFloat64(g.metrics.Requests.WithLabelValues("bot", "openai", "openai/api-key", "gpt-4o", "no_usage")); got != 1 {
		t.Errorf("no_usage requests metric = %v", got)
	}
}

// TestErrorMidStream: a provider error instead of usage records no usage
// (OpenAI) or the provisional figures as partial (Anthropic message_start).
func TestErrorMidStream(t *testing.T) {
	cases := map[string]struct {
		d       Dialect
		path    string
		body    string
		outcome func(Row) bool
		tokens  Tokens
	}{
		"chat":      {DialectOpenAI, "/v1/chat/completions", `{"model":"gpt-4o","stream":true}`, func(r Row) bool { return r.NoUsage == 1 }, Tokens{}},
		"responses": {DialectOpenAI, "/v1/responses", `{"model":"gpt-4o","stream":true}`, func(r Row) bool { return r.NoUsage == 1 }, Tokens{}},
		"anthropic": {DialectAnthropic, "/v1/messages", `{"model":"claude-haiku-4-5","stream":true}`, func(r Row) bool { return r.Partial == 1 },
			Tokens{Input: usageA.Prompt + usageA.Cached, Output: 1, CachedInput: usageA.Cached}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			up := newFake(t)
			up.midError = true
			st := NewMemStore()
			tg := openaiTarget
			tg.Dialect = tc.d
			b := []Budget{{Name: "b", Agent: "bot", Tokens: 1_000_000, Window: "day"}}
			g := newGateway(t, up, st, b, tg)
			g.post(t, tc.path, tc.body)
			rows := waitRows(t, st, 1)
			if !tc.outcome(rows[0]) || rows[0].Tokens != tc.tokens {
				t.Errorf("recorded %s", fmtRow(rows[0]))
			}
			if _, reserved, _ := st.Window(context.Background(), "b", nil); reserved != 0 {
				t.Errorf("reservation kept: %d", reserved)
			}
		})
	}
}

// TestBudgetConcurrency: 50 concurrent requests against a budget that
// fits 10 → exactly 10 reach the upstream, 40 get 429 BUDGET_EXCEEDED.
func TestBudgetConcurrency(t *testing.T) {
	up := newFake(t)
	up.gate = make(chan struct{}) // hold every forwarded request until all are decided
	st := NewMemStore()
	body := `{"model":"gpt-4o","max_tokens":1000,"messages":[{"role":"user","content":"hello"}]}`
	per := int64(1000 + (len(body)+2)/3)
	b := []Budget{{Name: "ten", Agent: "bot", Credential: "openai/api-key", Tokens: 10 * per, Window: "month"}}
	g := newGateway(t, up, st, b, openaiTarget)
	var wg sync.WaitGroup
	codes := make(chan int, 50)
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := http.Post(g.srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	close(start)
	got429 := 0
	for got429 < 40 {
		var c int
		select {
		case c = <-codes:
		case <-time.After(10 * time.Second):
			close(up.gate)
			t.Fatalf("only %d rejections; %d requests forwarded against a budget for 10", got429, up.hits.Load())
		}
		if c != http.StatusTooManyRequests {
			t.Fatalf("status %d before all rejections were in", c)
		}
		got429++
	}
	if h := up.hits.Load(); h > 10 {
		t.Fatalf("%d requests forwarded against a budget for 10", h)
	}
	close(up.gate)
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == 200 {
			ok++
		}
	}
	if ok != 10 || up.hits.Load() != 10 {
		t.Fatalf("ok=%d hits=%d, want 10", ok, up.hits.Load())
	}
	if got := testutil.ToFloat64(g.metrics.BudgetRejections.WithLabelValues("ten")); got != 40 {
		t.Errorf("rejections metric %v", got)
	}
	waitRows(t, st, 10)
	used, reserved, _ := st.Window(context.Background(), "ten", b[0].mustWindow(time.Now()))
	if used != 10*(usageA.Prompt+usageA.Completion) || reserved != 0 {
		t.Errorf("used %d reserved %d", used, reserved)
	}
}

func (b *Budget) mustWindow(now time.Time) []string {
	k, _ := b.window(now)
	return k
}

// TestOverBudgetAnswer: the 429 names the budget, its limit, what is used
// and when it resets, with Retry-After.
func TestOverBudgetAnswer(t *testing.T) {
	up := newFake(t)
	st := NewMemStore()
	b := []Budget{{Name: "daily-usd", Credential: "openai/api-key", USD: 0.005, Window: "day"}}
	g := newGateway(t, up, st, b, openaiTarget)
	body := `{"model":"gpt-4o","max_tokens":100,"messages":[]}`
	if resp, _ := g.post(t, "/v1/chat/completions", body); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	waitRows(t, st, 1)
	resp, raw := g.post(t, "/v1/chat/completions", body)
	if resp.StatusCode != 429 || resp.Header.Get("X-Airlock-Error") != "BUDGET_EXCEEDED" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	var doc struct {
		Error struct {
			Budget, Unit, Reset, Detail string
			Limit, Used                 float64
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	_, pr, _ := ShippedPrices().Lookup("gpt-4o")
	spent := float64(pr.Cost(Tokens{Input: usageA.Prompt, Output: usageA.Completion, CachedInput: usageA.Cached})) / 1e9
	e := doc.Error
	tomorrow := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour).Format(time.RFC3339)
	if e.Budget != "daily-usd" || e.Unit != "usd" || e.Limit != 0.005 || e.Used != spent || e.Reset != tomorrow ||
		!strings.Contains(e.Detail, `"daily-usd"`) {
		t.Errorf("answer %+v (spent %v, reset %s)", e, spent, tomorrow)
	}
}
