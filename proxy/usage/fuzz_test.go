package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// feedSplit feeds data to a fresh sseMeter in pieces cut by the bytes of
// cuts, returning the relayed bytes (strip mode) and the tally.
func feedSplit(ep Endpoint, d Dialect, strip bool, data, cuts []byte) ([]byte, tally) {
	var t tally
	s := newSSEMeter(ep, d, &t, strip)
	var out []byte
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(cuts) > 0 {
			n = min(int(cuts[i%len(cuts)])%17+1, len(data))
		}
		s.feed(data[:n])
		data = data[n:]
		out = append(out, s.out...)
		s.out = s.out[:0]
	}
	s.end()
	out = append(out, s.out...)
	return out, t
}

func seedStreams(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.sse")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{3, 200, 7})
	}
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\r\n\r\ndata: [DONE]\r\r"), []byte{1})
	f.Add([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n"), []byte{})
}

// FuzzSSEMeter: any bytes, any split: no panic, the same tally and the
// same relayed bytes however the stream is cut, and outside strip mode
// nothing is changed.
func FuzzSSEMeter(f *testing.F) {
	seedStreams(f)
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		for _, ep := range []Endpoint{EndpointChat, EndpointResponses, EndpointMessages} {
			d := DialectOpenAI
			if ep == EndpointMessages {
				d = DialectAnthropic
			}
			whole, t1 := feedSplit(ep, d, true, data, nil)
			cut, t2 := feedSplit(ep, d, true, data, cuts)
			if !bytes.Equal(whole, cut) || t1 != t2 {
				t.Fatalf("%v: split changed the result:\n%q\n%q\n%+v\n%+v", ep, whole, cut, t1, t2)
			}
			if ep != EndpointChat && len(whole) != 0 {
				t.Fatalf("%v: strip mode outside chat completions", ep)
			}
			if ep == EndpointChat && !bytes.Contains(data, []byte("usage")) && !bytes.Equal(whole, data) {
				t.Fatalf("bytes changed without a usage member:\n%q\n%q", data, whole)
			}
			if len(whole) > len(data) {
				t.Fatal("strip added bytes")
			}
		}
	})
}

// FuzzStripReference builds the same stream twice, as a provider sends it
// with include_usage (a "usage":null member in every chunk, a usage-only
// chunk at the end) and without, and checks that stripping the first gives
// exactly the second, with the usage counted.
func FuzzStripReference(f *testing.F) {
	f.Add("Hello", uint8(3), false, false, uint32(12), uint32(34), "x")
	f.Add("a\"b\\n\u2028", uint8(0), true, true, uint32(0), uint32(1), "")
	f.Fuzz(func(t *testing.T, content string, pos uint8, spaced, crlf bool, prompt, completion uint32, extra string) {
		sep, eol := ",", "\n"
		if spaced {
			sep = ", "
		}
		if crlf {
			eol = "\r\n"
		}
		c, _ := json.Marshal(content)
		x, _ := json.Marshal(extra)
		members := []string{`"id":"chatcmpl-1"`, `"object":"chat.completion.chunk"`, `"choices":[{"index":0,"delta":{"content":` + string(c) + `}}]`, `"extra":` + string(x)}
		p := int(pos) % (len(members) + 1)
		with := append(append(append([]string{}, members[:p]...), `"usage":null`), members[p:]...)
		obj := func(ms []string) string { return "{" + strings.Join(ms, sep) + "}" }
		ev := func(s string) string { return "data: " + s + eol + eol }
		usage := fmt.Sprintf(`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`, prompt, completion)
		want := ev(obj(members)) + ": keep-alive" + eol + eol + ev(obj(members)) + ev("[DONE]")
		in := ev(obj(with)) + ": keep-alive" + eol + eol + ev(obj(with)) + ev(usage) + ev("[DONE]")
		got, tl := feedSplit(EndpointChat, DialectOpenAI, true, []byte(in), []byte(content))
		if string(got) != want {
			t.Fatalf("stripped:\n%q\nwant:\n%q", got, want)
		}
		if tl.oa.Input != int64(prompt) || tl.oa.Output != int64(completion) || !tl.final {
			t.Fatalf("tally %+v", tl)
		}
	})
}

// FuzzJSONScan compares the streaming path scanner with encoding/json on
// valid documents.
func FuzzJSONScan(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"usage":2}],"usage":{"prompt_tokens":3},"response":{"usage":{"x":[{}]}}}`), []byte{2})
	f.Add([]byte(`{"usage":"s\"}","response":{"model":"m","usage":null}}`), []byte{1, 9})
	f.Add([]byte(`{"usage":12.5e3 ,"model":true}`), []byte{})
	f.Add([]byte(`{"a":[[[["]}",{"usage":1}],[1, 2e5]]]],"usage":{"x":[[[["{"]]]]},"model":"m"}`), []byte{4})
	f.Fuzz(func(t *testing.T, doc, cuts []byte) {
		s := newScan([][]string{{"usage"}, {"response", "usage"}, {"model"}})
		for i, rest := 0, doc; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(int(cuts[i%len(cuts)])%13+1, n)
			}
			s.write(rest[:n])
			rest = rest[n:]
		}
		if !json.Valid(doc) || bytes.IndexByte(doc, '\\') >= 0 {
			return // the scanner only has to survive these
		}
		var m map[string]any
		if json.Unmarshal(doc, &m) != nil || hasDup(doc) {
			return
		}
		check := func(i int, want any, present bool) {
			got := s.get(i)
			if s.overflowed(i) {
				return
			}
			if !present {
				if got != nil {
					t.Fatalf("path %d: captured %q from nothing", i, got)
				}
				return
			}
			var v any
			if err := json.Unmarshal(got, &v); err != nil || !reflect.DeepEqual(v, want) {
				t.Fatalf("path %d: captured %q, want %v (%v)", i, got, want, err)
			}
		}
		u, ok := m["usage"]
		check(0, u, ok)
		mo, ok := m["model"]
		check(2, mo, ok)
		if r, ok := m["response"].(map[string]any); ok {
			ru, ok := r["usage"]
			check(1, ru, ok)
		}
	})
}

// hasDup reports duplicate keys at the top level or inside "response"
// (encoding/json keeps the last, the scanner the first).
func hasDup(doc []byte) bool {
	ms, _, _, ok := objectMembers(doc)
	if !ok {
		return true
	}
	seen := map[string]bool{}
	for _, m := range ms {
		key := m.name(doc)
		if seen[key] {
			return true
		}
		seen[key] = true
		if key == "response" && hasDupObj(doc[m.valStart:m.valEnd]) {
			return true
		}
	}
	return false
}

func hasDupObj(b []byte) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	return hasDup(b)
}

// heldSeeds are data values of real-shaped events of the three stream
// kinds and the shapes that test the held walk's reading of two-key paths
// ("message.usage", "response.usage"): duplicate keys, the outer key's
// value not an object, escaped keys, the same keys nested deeper.
var heldSeeds = []string{
	`{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":3,"output_tokens":1}}}`,
	`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`,
	`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}`,
	`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
	`{"type":"response.completed","sequence_number":5,"response":{"id":"resp_1","status":"completed","model":"gpt-4o","output":[],"usage":{"input_tokens":36,"output_tokens":87,"total_tokens":123}}}`,
	`{"type":"message_start","message":{"model":"a"},"message":{"usage":{"input_tokens":3},"model":"b"}}`,
	`{"type":"message_start","message":"x","message":{"usage":{"input_tokens":4}}}`,
	`{"type":"message_start","message":[{"usage":{"input_tokens":5}}],"message":null}`,
	`{"type":"message_start","m\u0065ssage":{"usage":{"input_tokens":6}},"message":{"us\u0061ge":{"input_tokens":7},"usage":{"input_tokens":8}}}`,
	`{"type":"message_start","x":{"message":{"usage":{"input_tokens":9}}},"message":{"content":[{"message":{"usage":1}}],"usage":{"input_tokens":10,"output_tokens":2},"usage":{"input_tokens":11}}}`,
	`{ "type" : "message_start" , "message" : { "usage" : { "input_tokens" : 12 } , "model" : "m" } , "usage" : {"output_tokens":1} }`,
	`{"type":"message_start","message":{},"message":{"model":null,"usage":null},"message":{"usage":{"input_tokens":13}}}`,
	`{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2}},"response":{"usage":{"input_tokens":3},"model":"m"},"usage":{"input_tokens":4}}`,
	`{"type":"response.failed","response":{"model":"m","error":{"code":"server_error"},"usage":{"input_tokens":5}}}`,
	`{"typ\u0065":"message_start","type":"message_start","message":{"usage":{"input_tokens":14}}}`,
	`{"type":"message_start","message":{"usage":{"input_tokens":1}}`,
	`{"type":"message_start","message":{"usage":{"input_tokens":1}}}}`,
	`{"type":"message_start","message":{"usage":{"input_tokens":1},}}`,
}

// heldStream is an SSE stream of the data values, each with its event
// name (the value of "type", when it has one).
func heldStream(data ...string) []byte {
	var b bytes.Buffer
	for _, d := range data {
		var v struct{ Type string }
		if json.Unmarshal([]byte(d), &v) == nil && v.Type != "" {
			fmt.Fprintf(&b, "event: %s\n", v.Type)
		}
		fmt.Fprintf(&b, "data: %s\n\n", d)
	}
	return b.Bytes()
}

// runSSE feeds data to a fresh meter cut by cuts; noDefer scans every data
// value as it arrives (the reference).
func runSSE(ep Endpoint, strip, noDefer bool, data, cuts []byte) ([]byte, tally, *sseMeter) {
	var tl tally
	d := DialectOpenAI
	if ep == EndpointMessages {
		d = DialectAnthropic
	}
	s := newSSEMeter(ep, d, &tl, strip)
	s.noDefer = noDefer
	var out []byte
	buf := make([]byte, len(data))
	for i, rest := 0, data; len(rest) > 0; i++ {
		n := len(rest)
		if len(cuts) > 0 {
			n = min(int(cuts[i%len(cuts)])%17+1, n)
		}
		// as a body's reader does, the buffer is handed over for the call
		// only: clobbered after it, so a meter keeping a slice of it reads
		// garbage
		copy(buf, rest[:n])
		s.feed(buf[:n])
		for j := range buf[:n] {
			buf[j] = 'X'
		}
		rest = rest[n:]
		out = append(out, s.out...)
		s.out = s.out[:0]
	}
	s.end()
	return append(out, s.out...), tl, s
}

// FuzzSSEDeferSame: the one walk over a held data value gives exactly
// what scanning every value as it arrives gives, for chat completions
// (strip mode and not: the same relayed bytes and the same tally),
// Responses and Messages streams (the same tally), however the stream is
// cut.
func FuzzSSEDeferSame(f *testing.F) {
	seedStreams(f)
	f.Add([]byte("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\ndata: {\"model\":\"m\",\"choices\":[{}],\"usage\":null}\n\ndata: [DONE]\n\n"), []byte{5, 1})
	f.Add([]byte("data: {\"a\":1,\ndata: \"usage\":null}\n\ndata: {\"usage\":null,\"usage\":{\"prompt_tokens\":1}}\n\n"), []byte{2})
	f.Add(heldStream(heldSeeds[:4]...), []byte{3, 9})
	f.Add(heldStream(heldSeeds[4]), []byte{})
	for _, d := range heldSeeds[5:] {
		f.Add(heldStream(d, heldSeeds[2]), []byte{7})
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		for _, tc := range []struct {
			ep    Endpoint
			strip bool
		}{{EndpointChat, true}, {EndpointChat, false}, {EndpointResponses, false}, {EndpointMessages, false}} {
			ref, rt, _ := runSSE(tc.ep, tc.strip, true, data, nil)
			got, gt, _ := runSSE(tc.ep, tc.strip, false, data, cuts)
			if !bytes.Equal(ref, got) || rt != gt {
				t.Fatalf("%v, strip %v: held walk differs from scanning:\n%q\n%q\n%+v\n%+v", tc.ep, tc.strip, ref, got, rt, gt)
			}
		}
	})
}

// TestSSEDeferLongEvents: events past maxHold (relayed unedited, scanned
// after all), several data lines and an unterminated last event read the
// same with the held walk as with scanning every value, in chat
// completions and Messages streams.
func TestSSEDeferLongEvents(t *testing.T) {
	long := strings.Repeat("x", maxHold+10)
	msgStart := `{"type":"message_start","message":{"model":"claude","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}`
	msgDelta := `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}`
	chat := map[string]string{
		"long value":      `data: {"model":"m","choices":[{"delta":{"content":"` + long + `"}}],"usage":null}` + "\n\n" + `data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}` + "\n\ndata: [DONE]\n\n",
		"long after data": `data: {"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}` + "\n: " + long + "\n\n",
		"two data lines":  "data: {\"model\":\"m\",\ndata: \"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}\n\n",
		"unterminated":    `data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":8}}`,
		"crlf":            "data: {\"choices\":[{}],\"usage\":null}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\r\n\r\n",
	}
	messages := map[string]string{
		"long message_start": "event: message_start\ndata: " + strings.Replace(msgStart, `"content":[]`, `"content":[{"type":"text","text":"`+long+`"}]`, 1) + "\n\nevent: message_delta\ndata: " + msgDelta + "\n\n",
		"long delta":         "event: message_start\ndata: " + msgStart + "\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + long + "\"}}\n\nevent: message_delta\ndata: " + msgDelta + "\n\n",
		"long after data":    "event: message_start\ndata: " + msgStart + "\n: " + long + "\n\n",
		"two data lines":     "event: message_start\ndata: {\"type\":\"message_start\",\ndata: \"message\":{\"usage\":{\"input_tokens\":4}}}\n\nevent: message_delta\ndata: " + msgDelta + "\n\n",
		"unterminated":       "event: message_start\ndata: " + msgStart + "\n\nevent: message_delta\ndata: " + msgDelta,
		"crlf":               "event: message_start\r\ndata: " + msgStart + "\r\n\r\nevent: message_delta\r\ndata: " + msgDelta + "\r\n\r\n",
	}
	for _, ep := range []Endpoint{EndpointChat, EndpointMessages} {
		streams, d, kind := chat, DialectOpenAI, "chat"
		if ep == EndpointMessages {
			streams, d, kind = messages, DialectAnthropic, "messages"
		}
		for name, stream := range streams {
			t.Run(kind+"/"+name, func(t *testing.T) {
				for _, tc := range []struct {
					strip bool
					cut   []byte
				}{{true, nil}, {true, []byte{1}}, {true, []byte{16}}, {true, []byte{255, 3}}, {false, nil}, {false, []byte{1}}, {false, []byte{255, 3}}} {
					if tc.strip && ep != EndpointChat {
						continue // strip mode is for chat completions only
					}
					cut := tc.cut
					var outs [2][]byte
					var tallies [2]tally
					for k, noDefer := range []bool{true, false} {
						s := newSSEMeter(ep, d, &tallies[k], tc.strip)
						s.noDefer = noDefer
						for i, rest := 0, []byte(stream); len(rest) > 0; i++ {
							n := len(rest)
							if len(cut) > 0 {
								n = min(int(cut[i%len(cut)])%4099+1, n)
							}
							s.feed(rest[:n])
							rest = rest[n:]
							outs[k] = append(outs[k], s.out...)
							s.out = s.out[:0]
						}
						s.end()
						outs[k] = append(outs[k], s.out...)
					}
					if !bytes.Equal(outs[0], outs[1]) || tallies[0] != tallies[1] {
						t.Fatalf("strip %v, cut %v: held walk differs:\n%.200q\n%.200q\n%+v\n%+v", tc.strip, cut, outs[0], outs[1], tallies[0], tallies[1])
					}
					if !tallies[1].seen {
						t.Fatalf("strip %v, cut %v: no usage counted: %+v", tc.strip, cut, tallies[1])
					}
				}
			})
		}
	}
}

// TestSSEHoldBounded: outside strip mode the held data value is one
// event's and at most maxHold bytes: a long stream of small events keeps
// one event's worth, and a value longer than maxHold goes to the scanner
// instead of growing the hold.
func TestSSEHoldBounded(t *testing.T) {
	var tl tally
	s := newSSEMeter(EndpointChat, DialectOpenAI, &tl, false)
	ev := []byte(`data: {"model":"m","choices":[{"delta":{"content":"hi"}}]}` + "\n\n")
	for range 2000 {
		s.feed(ev)
	}
	if len(s.hold) != 0 || cap(s.hold) > 2*len(ev) {
		t.Fatalf("after 2000 events the hold has %d bytes (cap %d)", len(s.hold), cap(s.hold))
	}
	long := []byte(`data: {"model":"m","choices":[{"delta":{"content":"` + strings.Repeat("x", 2*maxHold) + `"}}]}`)
	for rest := long; len(rest) > 0; {
		n := min(1000, len(rest))
		s.feed(rest[:n])
		rest = rest[n:]
		if len(s.hold) > maxHold {
			t.Fatalf("the hold grew to %d bytes (maxHold %d)", len(s.hold), maxHold)
		}
	}
	s.feed([]byte("\n\n"))
	if tl.model != "m" {
		t.Fatalf("the long event was not read: %+v", tl)
	}
}
