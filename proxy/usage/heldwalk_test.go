package usage

import (
	"bytes"
	"os"
	"testing"
)

// TestSSEHeldWalkTwoKeyPaths: every one-line event of a Messages or a
// Responses stream (their usage and model sit two keys deep:
// "message.usage", "response.usage") is read by the held walk, not fed to
// the scanner, and the tally is the scanner's. It fails if those streams
// fall back to the slower scanner (BenchmarkObserverSSE/messages).
func TestSSEHeldWalkTwoKeyPaths(t *testing.T) {
	file := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		ep     Endpoint
		stream []byte
		in     int64
		out    int64
		model  string
	}{
		{"messages.sse", EndpointMessages, file("messages.sse"), 1234 + 1024, 567, "gpt-4o-2024-08-06"},
		{"messages bench", EndpointMessages, benchMessagesStream(5), 2095 + 1024, 503, "claude-sonnet-4-5-20250929"},
		{"responses.sse", EndpointResponses, file("responses.sse"), 1234, 567, "gpt-4o-2024-08-06"},
		{"responses bench", EndpointResponses, benchResponsesStream(5), 36, 87, "gpt-4o-2024-08-06"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := bytes.Count(tc.stream, []byte("\ndata: ")) + bytes.Count(tc.stream[:min(6, len(tc.stream))], []byte("data: "))
			for _, cuts := range [][]byte{nil, {1}, {5, 200}} {
				_, ref, _ := runSSE(tc.ep, false, true, tc.stream, nil)
				_, got, s := runSSE(tc.ep, false, false, tc.stream, cuts)
				if s.walks != events {
					t.Fatalf("cuts %v: %d of %d events read by the held walk", cuts, s.walks, events)
				}
				if got != ref {
					t.Fatalf("cuts %v: held walk %+v, scanner %+v", cuts, got, ref)
				}
				d := DialectOpenAI
				if tc.ep == EndpointMessages {
					d = DialectAnthropic
				}
				tok := got.tokens(d)
				if !got.final || tok.Input != tc.in || tok.Output != tc.out || got.model != tc.model {
					t.Fatalf("cuts %v: counted %+v (%+v)", cuts, tok, got)
				}
			}
		})
	}
}

// TestSSEHeldWalkNoAllocs: once warm, a meter reads Messages, Responses
// and chat streams without allocating (the held walk's member lists and
// captures reuse their buffers).
func TestSSEHeldWalkNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		ep     Endpoint
		d      Dialect
		stream []byte
	}{
		{EndpointMessages, DialectAnthropic, benchMessagesStream(20)},
		{EndpointResponses, DialectOpenAI, benchResponsesStream(20)},
		{EndpointChat, DialectOpenAI, benchStream(20, true)},
	} {
		var tl tally
		s := newSSEMeter(tc.ep, tc.d, &tl, false)
		evs := splitEvents(tc.stream)
		feed := func() {
			for _, ev := range evs {
				s.feed(ev)
			}
		}
		feed()
		walks := s.walks
		if n := testing.AllocsPerRun(20, feed); n != 0 {
			t.Errorf("%v: %v allocations a stream", tc.ep, n)
		}
		if want := 21 * bytes.Count(tc.stream, []byte("data: {")); s.walks-walks != want { // all but [DONE]
			t.Errorf("%v: %d of %d events walked", tc.ep, s.walks-walks, want)
		}
	}
}
