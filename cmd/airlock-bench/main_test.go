package main

import (
	"bufio"
	"bytes"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/policy"
)

func TestParseFlags(t *testing.T) {
	cases := map[string]struct {
		args    []string
		wantErr bool
		conc    []int
	}{
		"defaults":       {args: nil, conc: []int{1, 10, 50, 200}},
		"levels":         {args: []string{"--concurrency", "2, 4"}, conc: []int{2, 4}},
		"bad level":      {args: []string{"--concurrency", "1,x"}, wantErr: true},
		"zero level":     {args: []string{"--concurrency", "0"}, wantErr: true},
		"zero requests":  {args: []string{"--requests", "0"}, wantErr: true},
		"stray argument": {args: []string{"extra"}, wantErr: true},
		"too many hosts": {args: []string{"--new-hosts", "100000"}, wantErr: true},
		"unknown flag":   {args: []string{"--nope"}, wantErr: true},
		"in-process":     {args: []string{"--airlock", "in-process"}, conc: []int{1, 10, 50, 200}},
		"bad airlock":    {args: []string{"--airlock", "docker"}, wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stderr = &strings.Builder{}
			o, err := parseFlags(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !slices.Equal(o.concurrency, tc.conc) {
				t.Fatalf("concurrency %v, want %v", o.concurrency, tc.conc)
			}
		})
	}
}

func TestBenchPolicyParses(t *testing.T) {
	hosts := []string{"127.0.0.1:8443", loopbackIP(1) + ":8443", loopbackIP(300) + ":8443"}
	pol, err := policy.Parse("bench.yaml", []byte(benchPolicy(hosts)))
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range []string{"127.0.0.1", "127.0.0.2", "127.0.1.51"} {
		r := pol.Match(benchAgent, "GET", h, 8443, "/v1/small")
		if r == nil || r.Credential != benchCredential || r.Name != "bench-"+string(rune('0'+i)) {
			t.Fatalf("host %s matched %+v", h, r)
		}
	}
	if r := pol.Match(benchAgent, "GET", "127.0.0.1", 8443, "/v2/denied"); r != nil {
		t.Fatalf("a path outside /v1/ matched %s", r.Name)
	}
	if r := pol.Match("someone-else", "GET", "127.0.0.1", 8443, "/v1/small"); r != nil {
		t.Fatalf("another agent matched %s", r.Name)
	}
}

// The meter command's two policies differ only in metering: the same
// rule matches, once with `usage: openai` and a budget over it.
func TestMeterPolicyParses(t *testing.T) {
	for _, metered := range []bool{false, true} {
		pol, err := policy.Parse("meter.yaml", []byte(meterPolicy("127.0.0.1:8443", metered)))
		if err != nil {
			t.Fatalf("metered=%v: %v", metered, err)
		}
		r := pol.Match(benchAgent, "POST", "127.0.0.1", 8443, "/v1/chat/completions")
		if r == nil || r.Credential != benchCredential {
			t.Fatalf("metered=%v: matched %+v", metered, r)
		}
		want, budgets := policy.UsageNone, 0
		if metered {
			want, budgets = policy.UsageOpenAI, 1
		}
		if r.Usage != want || len(pol.Budgets) != budgets {
			t.Errorf("metered=%v: usage %q, %d budgets; want %q, %d", metered, r.Usage, len(pol.Budgets), want, budgets)
		}
	}
}

// The fake chat upstream answers as OpenAI does: include_usage adds
// "usage":null to every chunk and a usage-only chunk before [DONE].
func TestChatCompletionsShape(t *testing.T) {
	cases := []struct {
		name, body     string
		events, nulls  int
		wantUsageChunk bool
	}{
		{"json", meterChatBody, 0, 0, false},
		{"sse", meterSSEBody, 5, 0, false},
		{"sse with usage", meterOwnBody, 6, 4, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			chatCompletions(w, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(c.body)))
			if c.events > 0 { // ?chunks=N: N chunks, the usage chunk and [DONE]
				w2 := httptest.NewRecorder()
				chatCompletions(w2, httptest.NewRequest("POST", "/v1/chat/completions?chunks=50", strings.NewReader(c.body)))
				if n := strings.Count(w2.Body.String(), "\n\n"); n != c.events+46 {
					t.Fatalf("chunks=50: %d events, want %d", n, c.events+46)
				}
				// --gap: the same stream, each chunk after the first a pause later
				w3 := httptest.NewRecorder()
				start := time.Now()
				chatCompletions(w3, httptest.NewRequest("POST", "/v1/chat/completions?chunks=4&flush=each&gap=20ms", strings.NewReader(c.body)))
				if took := time.Since(start); took < 60*time.Millisecond {
					t.Fatalf("gap=20ms: 4 chunks in %v, want 3 gaps (60ms) or more", took)
				}
				if w3.Body.String() != w.Body.String() {
					t.Fatalf("gap changed the stream: %q, want %q", w3.Body.String(), w.Body.String())
				}
			}
			got := w.Body.String()
			if c.events == 0 {
				if got != chatAnswer {
					t.Fatalf("answer %q", got)
				}
				return
			}
			if n := strings.Count(got, "\n\n"); n != c.events || !strings.HasSuffix(got, "data: [DONE]\n\n") {
				t.Fatalf("%d events, want %d ending in [DONE]: %q", n, c.events, got)
			}
			if n := strings.Count(got, `"usage":null`); n != c.nulls || strings.Contains(got, chatUsage) != c.wantUsageChunk {
				t.Fatalf("%d usage:null (want %d), usage chunk %v: %q", n, c.nulls, c.wantUsageChunk, got)
			}
		})
	}
}

// The meter bench fails when the meter did not count exactly what was
// sent to "on", or counted anything sent to "off".
func TestMeterMiscounted(t *testing.T) {
	ok := meterReport{Sent: 10, Counted: [2]float64{0, 10}, Tokens: 10 * chatTokens}
	if err := ok.miscounted(); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]meterReport{
		"one missed":     {Sent: 10, Counted: [2]float64{0, 9}, Tokens: 10 * chatTokens},
		"tokens short":   {Sent: 10, Counted: [2]float64{0, 10}, Tokens: 10*chatTokens - 1},
		"off metered":    {Sent: 10, Counted: [2]float64{1, 10}, Tokens: 10 * chatTokens},
		"nothing at all": {Sent: 10},
		"A/A metered":    {Sent: 10, Counted: [2]float64{0, 10}, Tokens: 10 * chatTokens, AA: true},
	} {
		if r.miscounted() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMeterAAExpectsNothingCounted(t *testing.T) {
	if err := (&meterReport{Sent: 10, AA: true}).miscounted(); err != nil {
		t.Fatal(err)
	}
}

func TestMedianOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := medianOf(c.in); got != c.want {
			t.Errorf("medianOf(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := roundRatios([]float64{1, 0.9876}); got != "1.000 0.988" {
		t.Errorf("roundRatios = %q", got)
	}
}

func TestSummarise(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(100-i) * time.Millisecond // reverse order: summarise sorts
	}
	s := summarise(lat, time.Second, 2)
	if s.RPS != 100 || s.P50ms != 51 || s.P99ms != 100 || s.Errors != 2 {
		t.Fatalf("summary %+v", s)
	}
	if z := summarise(nil, time.Second, 0); z.RPS != 0 || z.Requests != 0 {
		t.Fatalf("empty summary %+v", z)
	}
}

func TestLoopbackIP(t *testing.T) {
	cases := map[int]string{1: "127.0.0.2", 249: "127.0.0.250", 250: "127.0.1.1", 300: "127.0.1.51"}
	for i, want := range cases {
		if got := loopbackIP(i); got != want {
			t.Errorf("loopbackIP(%d) = %s, want %s", i, got, want)
		}
	}
}

// The soak and scale commands parse their own flags and refuse bad ones
// before starting anything.
func TestSubcommandFlags(t *testing.T) {
	stderr = &strings.Builder{}
	for _, args := range [][]string{{"soak", "--minutes", "0"}, {"streams", "--nope"}, {"idle", "extra", "--n"}, {"meter", "--rounds", "1"}, {"meter", "--kinds", "chat,nope"}, {"meter", "--chunks", "0"}} {
		if code := run(args); code == exitOK {
			t.Errorf("%v: exit %d, want a failure", args, code)
		}
	}
}

func TestWSFrameRoundTrip(t *testing.T) {
	for _, masked := range []bool{false, true} {
		msg := []byte("echo 12345678")
		op, got, err := wsRead(bufio.NewReader(bytes.NewReader(wsFrame(0x2, msg, masked))))
		if err != nil || op != 0x2 || !bytes.Equal(got, msg) {
			t.Fatalf("masked=%v: op %d %q %v", masked, op, got, err)
		}
	}
	if wsAccept("dGhlIHNhbXBsZSBub25jZQ==") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 section 1.3
		t.Fatal("Sec-WebSocket-Accept differs from the RFC's example")
	}
}

func TestParseStatCPU(t *testing.T) {
	line := []byte("4242 (air lock) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0\n")
	if got, want := parseStatCPU(line), 3250*time.Millisecond; got != want {
		t.Fatalf("parseStatCPU = %v, want %v", got, want)
	}
	if got := parseStatCPU([]byte("garbage")); got != 0 {
		t.Fatalf("parseStatCPU(garbage) = %v, want 0", got)
	}
}
