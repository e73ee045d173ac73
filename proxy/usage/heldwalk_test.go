package usage

import (
	"bytes"
	"os"
	"strings"
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
		walks := s.walks + s.settled
		if n := testing.AllocsPerRun(20, feed); n != 0 {
			t.Errorf("%v: %v allocations a stream", tc.ep, n)
		}
		want := 21 * bytes.Count(tc.stream, []byte("data: {")) // all but [DONE]
		if tc.ep == EndpointChat {
			want = 21 * bytes.Count(tc.stream, []byte("data: ")) // [DONE] settles
		}
		if s.walks+s.settled-walks != want {
			t.Errorf("%v: %d of %d events walked or settled", tc.ep, s.walks+s.settled-walks, want)
		}
	}
}

// TestSSESettledChunks: the chunks between a chat stream's first (its
// model) and its usage chunk settle unread, in strip mode and not, and
// the stream still reads and relays as the scanner does. Chunks that only
// look settled are read: a usage or an error in the middle of a stream is
// counted, a spaced or unusual "usage" is walked, and strip mode cuts
// only a tail it can cut as the walk would.
func TestSSESettledChunks(t *testing.T) {
	const n = 20
	for _, strip := range []bool{true, false} {
		stream := benchStream(n, true)
		ref, rt, _ := runSSE(EndpointChat, strip, true, stream, nil)
		got, gt, s := runSSE(EndpointChat, strip, false, stream, []byte{9, 200})
		if want := n; s.settled != want || s.walks != 2 {
			t.Errorf("strip %v: %d events settled, %d walked; want %d and 2", strip, s.settled, s.walks, want)
		}
		if !bytes.Equal(ref, got) || rt != gt {
			t.Errorf("strip %v: settled stream differs from scanning:\n%q\n%q\n%+v\n%+v", strip, ref, got, rt, gt)
		}
		if strip && !bytes.Equal(got, benchStream(n, false)) {
			t.Errorf("strip mode relayed\n%q\nwant the stream without include_usage", got)
		}
	}
	first := `data: {"model":"m","choices":[{"delta":{"content":"a"}}],"usage":null}` + "\n\n"
	next := `data: {"model":"m","choices":[{"delta":{"content":"b"}}],"usage":null}` + "\n\n"
	for name, tc := range map[string]struct {
		middle  string
		cut     string // the middle event's data as strip mode relays it ("": dropped)
		in, out int64
		errored bool
		// events that settle unread, strip mode or not: both nexts and
		// [DONE] always (nothing to read in them)
		settled int
	}{
		"usage mid-stream":     {`{"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}`, ``, 5, 1, false, 3},
		"spaced usage":         {`{"model":"m","choices":[],"usage" : {"prompt_tokens":5,"completion_tokens":1}}`, ``, 5, 1, false, 3},
		"escaped then null":    {`{"model":"m","us\u0061ge":{"prompt_tokens":5},"usage":null}`, `{"model":"m","us\u0061ge":{"prompt_tokens":5}}`, 0, 0, false, 4},
		"error mid-stream":     {`{"model":"m","error":{"message":"overloaded"},"usage":null}`, `{"model":"m","error":{"message":"overloaded"}}`, 0, 0, true, 3},
		"space before tail":    {`{"model":"m","choices":[] ,"usage":null}`, `{"model":"m","choices":[]}`, 0, 0, false, 3},
		"null usage not last":  {`{"usage":null,"model":"m","choices":[]}`, `{"model":"m","choices":[]}`, 0, 0, false, 3},
		"two null usages":      {`{"usage":null,"choices":[],"usage":null}`, `{"usage":null,"choices":[]}`, 0, 0, false, 3},
		"invalid, tail cut":    {`{"choices":[,"usage":null}`, `{"choices":[}`, 0, 0, false, 4},
		"nested usage object":  {`{"choices":[{"usage":{"prompt_tokens":9}}],"usage":null}`, `{"choices":[{"usage":{"prompt_tokens":9}}]}`, 0, 0, false, 3},
		"usage like the last":  {`{"model":"m","choices":[{"delta":{"content":"c"}}],"usage":{"prompt_tokens":5,"completion_tokens":1},"usage":null}`, `{"model":"m","choices":[{"delta":{"content":"c"}}],"usage":{"prompt_tokens":5,"completion_tokens":1},"usage":null}`, 5, 1, false, 3},
		"error like the last":  {`{"model":"m","choices":[{"delta":{"content":"c"}}],"error":{"message":"x"},"usage":null}`, `{"model":"m","choices":[{"delta":{"content":"c"}}],"error":{"message":"x"}}`, 0, 0, true, 3},
		"error across shared":  {`{"model":"m","choices":[{"delta":{"content":"b"}}],"error":1,"usage":null}`, `{"model":"m","choices":[{"delta":{"content":"b"}}],"error":1}`, 0, 0, true, 3},
		"usage null in string": {`{"choices":[{"delta":{"content":"\"usage\":null"}}],"usage":null}`, `{"choices":[{"delta":{"content":"\"usage\":null"}}]}`, 0, 0, false, 4},
	} {
		for _, strip := range []bool{true, false} {
			// the middle event follows one that settled: only what it does
			// not share with that one is searched
			stream := []byte(first + next + "data: " + tc.middle + "\n\n" + next + "data: [DONE]\n\n")
			ref, rt, _ := runSSE(EndpointChat, strip, true, stream, nil)
			got, gt, s := runSSE(EndpointChat, strip, false, stream, nil)
			if !bytes.Equal(ref, got) || rt != gt {
				t.Errorf("%s, strip %v: differs from scanning:\n%q\n%q\n%+v\n%+v", name, strip, ref, got, rt, gt)
			}
			tok := gt.tokens(DialectOpenAI)
			if tok.Input != tc.in || tok.Output != tc.out || gt.errored != tc.errored {
				t.Errorf("%s, strip %v: counted %+v, errored %v; want %d in, %d out, errored %v", name, strip, tok, gt.errored, tc.in, tc.out, tc.errored)
			}
			if s.settled != tc.settled {
				t.Errorf("%s, strip %v: %d events settled unread, want %d", name, strip, s.settled, tc.settled)
			}
			if !strip {
				continue
			}
			relayed := strings.ReplaceAll(first+next, `,"usage":null}`, "}")
			if tc.cut != "" {
				relayed += "data: " + tc.cut + "\n\n"
			}
			relayed += strings.ReplaceAll(next, `,"usage":null}`, "}")
			if relayed += "data: [DONE]\n\n"; string(got) != relayed {
				t.Errorf("%s: strip mode relayed\n%q\nwant\n%q", name, got, relayed)
			}
		}
	}
}
