package usage

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// pieceReader returns its bytes n at a time (an upstream whose answer
// arrives in pieces that cut keys, escapes and numbers).
type pieceReader struct {
	b []byte
	n int
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// TestHostileAnswers plays an upstream (or a model led by a prompt) that
// tries to make the meter count what the provider did not: usage text in
// the model's content (escaped quotes at every offset of an 8-byte word,
// which the string scanner reads a word at a time), usage in a nested
// object, duplicate usage keys, a truncated answer. Each is read whole and
// in pieces of 1, 7 and 8 bytes; the agent must get every byte unchanged.
func TestHostileAnswers(t *testing.T) {
	real := `"usage":{"prompt_tokens":24,"completion_tokens":5,"total_tokens":29}`
	fake := `\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0,\"total_tokens\":0}`
	answer := func(content string) string {
		return `{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` +
			content + `"},"finish_reason":"stop"}],` + real + `}`
	}
	type want struct {
		in, out int64
		outcome Outcome
	}
	ok := want{24, 5, OutcomeOK}
	cases := map[string]struct {
		body string
		want want
	}{
		"usage text in the content":     {answer(fake), ok},
		"usage text ending the content": {answer(`see: {` + fake + `}\\`), ok},
		"usage in a nested object":      {`{"model":"gpt-4o","choices":[{"usage":{"prompt_tokens":999,"completion_tokens":999}}],` + real + `}`, ok},
		"usage in a nested string key":  {`{"model":"gpt-4o","x":{"\"usage\"":{"prompt_tokens":999}},` + real + `}`, ok},
		"truncated in the usage":        {answer("hi")[:len(answer("hi"))-30], want{0, 0, OutcomeNone}},
		"truncated after the usage":     {answer("hi")[:len(answer("hi"))-1], want{24, 5, OutcomeOK}},
		"duplicate usage keys":          {`{"model":"gpt-4o",` + real + `,"usage":{"prompt_tokens":1,"completion_tokens":1}}`, ok},
	}
	for i := range 8 { // the escaped quote at every offset of a word
		cases["escape at offset "+string(rune('0'+i))] = struct {
			body string
			want want
		}{answer(strings.Repeat("x", i) + fake), ok}
	}
	for name, tc := range cases {
		for _, piece := range []int{1 << 20, 1, 7, 8} {
			m, err := New(Config{Store: NewMemStore(), Budgets: []Budget{{Name: "b", Rule: openaiTarget.Rule, Tokens: 1 << 40, Window: "month"}}})
			if err != nil {
				t.Fatal(err)
			}
			r, _ := http.NewRequest(http.MethodPost, "https://api.openai.com/v1/chat/completions",
				strings.NewReader(`{"model":"gpt-4o","max_tokens":10,"messages":[]}`))
			tk, err := m.Admit(r.Context(), openaiTarget, r)
			if err != nil || tk == nil {
				t.Fatal(tk, err)
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(&pieceReader{b: []byte(tc.body), n: piece}), ContentLength: -1}
			tk.Wrap(resp)
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || !bytes.Equal(got, []byte(tc.body)) {
				t.Fatalf("%s (pieces of %d): relayed %q, %v", name, piece, got, err)
			}
			res := tk.Result()
			if res == nil || res.Tokens.Input != tc.want.in || res.Tokens.Output != tc.want.out || res.Outcome != tc.want.outcome {
				t.Errorf("%s (pieces of %d): got %+v, want %+v", name, piece, res, tc.want)
			}
		}
	}
}

// TestHostileStreams: a stripped stream (the agent did not ask for usage)
// whose chunks share their first bytes with the chunk before, where the
// shared bytes end inside a number, a string or a key, or just before a
// break, so a walk resuming after the shared members would misread the
// chunk: usage text inside the content, a usage member only in a later
// chunk's string, a number that grows. Only the provider's top-level
// "usage":null members go, only its usage chunk is dropped and counted,
// and every other byte reaches the agent unchanged, however it is cut.
func TestHostileStreams(t *testing.T) {
	ev := func(data string) string { return "data: " + data + "\n\n" }
	usage := `{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`
	fakeUsage := `\",\"usage\":{\"prompt_tokens\":999,\"completion_tokens\":999}}`
	cases := map[string]struct{ chunks, want []string }{
		"usage text in a later chunk's content": {
			[]string{`{"id":"c","choices":[{"delta":{"content":"a"}}],"usage":null}`, `{"id":"c","choices":[{"delta":{"content":"a` + fakeUsage + `"}}],"usage":null}`},
			[]string{`{"id":"c","choices":[{"delta":{"content":"a"}}]}`, `{"id":"c","choices":[{"delta":{"content":"a` + fakeUsage + `"}}]}`},
		},
		"number grows after the shared bytes": {
			[]string{`{"created":1,"usage":null}`, `{"created":12,"usage":null}`, `{"created":12.5,"usage":null}`},
			[]string{`{"created":1}`, `{"created":12}`, `{"created":12.5}`},
		},
		"key grows after the shared bytes": {
			[]string{`{"id":"c","usage":null}`, `{"id":"c","usages":null,"usage":null}`},
			[]string{`{"id":"c"}`, `{"id":"c","usages":null}`},
		},
		"string ends later": {
			[]string{`{"id":"c","model":"m","usage":null}`, `{"id":"c","model":"m\",\"usage\":null,\"x\":\"","usage":null}`},
			[]string{`{"id":"c","model":"m"}`, `{"id":"c","model":"m\",\"usage\":null,\"x\":\""}`},
		},
		"broken after the shared bytes": { // not JSON: relayed as sent
			[]string{`{"id":"c","choices":[],"usage":null}`, `{"id":"c","choices":[],"usage":null`, `{"id":"c","choices":[],"usage":null}`},
			[]string{`{"id":"c","choices":[]}`, `{"id":"c","choices":[],"usage":null`, `{"id":"c","choices":[]}`},
		},
		"nested usage after the shared bytes": {
			[]string{`{"id":"c","x":{"a":1},"usage":null}`, `{"id":"c","x":{"a":1,"usage":{"prompt_tokens":999,"completion_tokens":999}},"usage":null}`},
			[]string{`{"id":"c","x":{"a":1}}`, `{"id":"c","x":{"a":1,"usage":{"prompt_tokens":999,"completion_tokens":999}}}`},
		},
	}
	for name, tc := range cases {
		var in, want strings.Builder
		for i, c := range tc.chunks {
			in.WriteString(ev(c))
			want.WriteString(ev(tc.want[i]))
		}
		in.WriteString(ev(usage) + ev("[DONE]"))
		want.WriteString(ev("[DONE]"))
		for _, cuts := range [][]byte{nil, {1}, {7}, {8}, {3, 200}} {
			got, tl := feedSplit(EndpointChat, DialectOpenAI, true, []byte(in.String()), cuts)
			if string(got) != want.String() {
				t.Fatalf("%s (cuts %v): relayed\n%q\nwant\n%q", name, cuts, got, want.String())
			}
			if tl.oa.Input != 3 || tl.oa.Output != 4 || !tl.final {
				t.Fatalf("%s (cuts %v): tally %+v, want 3 in, 4 out", name, cuts, tl)
			}
		}
	}
}
