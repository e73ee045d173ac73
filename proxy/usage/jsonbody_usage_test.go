package usage

import (
	"bytes"
	"testing"
)

// walkRef is the walk before it decoded the usage object on the way
// (every value checked by skipJSON, the usage decoded afterwards by
// parseUsage): FuzzTopUsageSame's reference.
func walkRef(c *topCaptures, b []byte, paths [][]string) bool {
	*c = topCaptures{}
	ok := func() bool {
		i := skipSpace(b, 0)
		if i >= len(b) || b[i] != '{' {
			return false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return skipSpace(b, i+1) == len(b)
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return false
			}
			ke, ok := skipString(b, i)
			if !ok {
				return false
			}
			key := b[i+1 : ke-1]
			if i = skipSpace(b, ke); i >= len(b) || b[i] != ':' {
				return false
			}
			i = skipSpace(b, i+1)
			ve, ok := skipJSON(b, i, 1)
			if !ok {
				return false
			}
			for k, p := range paths {
				if len(p) == 1 && !c.done[k] && string(key) == p[0] {
					c.v[k], c.done[k] = b[i:ve], true
				}
			}
			if i = skipSpace(b, ve); i >= len(b) {
				return false
			}
			switch b[i] {
			case '}':
				return skipSpace(b, i+1) == len(b)
			case ',':
				i = skipSpace(b, i+1)
			default:
				return false
			}
		}
	}()
	if !ok {
		*c = topCaptures{}
	}
	return ok
}

// FuzzTopUsageSame: the walk that decodes the usage object on the way
// accepts what the old walk (skipJSON on every value) accepts, captures
// the same bytes, and its decoded usage is parseUsage of the captured
// object; the tally of a whole answer is the one the captures alone give.
func FuzzTopUsageSame(f *testing.F) {
	for _, s := range []string{
		`{"id":"x","model":"gpt-4o","usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1}}}`,
		`{"usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3,"cache_creation_input_tokens":4},"type":"message"}`,
		`{"usage":{"prompt_tokens":1.5},"model":"m"}`, `{"usage":{"Prompt_Tokens":2,"prompt_tokens":null}}`,
		`{"usage":{"pr\u006fmpt_tokens":2}}`, `{"usage":{"prompt_tokens":2},"usage":{"prompt_tokens":9}}`,
		`{"usage":{"x":[[[{"a":"}"}]]],"completion_tokens":"7"}}`, `{"usage":{"prompt_tokens":1}`, `{"usage":null}`,
		`{"usage":{"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens_details":{"x":1}}}`,
		`{"usage":{"completion_tokens_details":null,"completion_tokens":99999999999999999999}}`,
		`{"usage":{"prompt_tokens":1,}}`, `{"usage":{"prompt_tokens":-0}} `, `{"usage":{"\u00e9":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, ep := range []Endpoint{EndpointChat, EndpointResponses, EndpointEmbeddings, EndpointMessages} {
			paths := pathsFor(ep, false)
			var top, ref topCaptures
			ok, refOK := top.scan(doc, paths), walkRef(&ref, doc, paths)
			if ok != refOK {
				t.Fatalf("%q: walk ok=%v, old walk %v", doc, ok, refOK)
			}
			for i := range paths {
				if !bytes.Equal(top.get(i), ref.get(i)) || (top.get(i) == nil) != (ref.get(i) == nil) {
					t.Fatalf("%q: path %v: walk %q, old walk %q", doc, paths[i], top.get(i), ref.get(i))
				}
			}
			if u := top.decoded(); u != nil {
				want, wantOK := parseUsage(top.get(pUsage))
				if !wantOK || *u != want {
					t.Fatalf("%q: walk decoded %+v, parseUsage %+v ok=%v", doc, *u, want, wantOK)
				}
			}
			if !ok {
				continue
			}
			var got, wantT tally
			interpretJSON(top.get, top.decoded(), ep, &got)
			interpretJSON(ref.get, nil, ep, &wantT)
			if got != wantT {
				t.Fatalf("%q: %v: tally %+v, from the captures %+v", doc, ep, got, wantT)
			}
		}
	})
}

// TestTopUsageDecoded: a usual answer's usage is decoded by the walk (no
// second pass), and one the decoder refuses is left to parseUsage.
func TestTopUsageDecoded(t *testing.T) {
	cases := map[string]struct {
		doc string
		pre bool
	}{
		"usual":       {`{"model":"gpt-4o","usage":{"prompt_tokens":3,"completion_tokens":4}}`, true},
		"float":       {`{"usage":{"prompt_tokens":3.5}}`, false},
		"escaped key": {`{"usage":{"pr\u006fmpt_tokens":3}}`, false},
		"null":        {`{"usage":null}`, false},
		"nested deep": {`{"usage":{"x":[[[[]]]],"prompt_tokens":3}}`, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var top topCaptures
			if !top.scan([]byte(tc.doc), pathsFor(EndpointChat, false)) {
				t.Fatalf("walk refused %s", tc.doc)
			}
			if got := top.decoded() != nil; got != tc.pre {
				t.Fatalf("decoded during the walk: %v, want %v", got, tc.pre)
			}
		})
	}
}

// TestTopUsageNestingLimit: at encoding/json's nesting limit the walk
// that decodes the usage object refuses exactly what the old walk refuses.
func TestTopUsageNestingLimit(t *testing.T) {
	seen := map[bool]bool{}
	for n := maxNesting - 4; n <= maxNesting; n++ {
		for _, inner := range []string{`"x":`, `"prompt_tokens_details":{"x":`} {
			closing := "}}"
			if inner != `"x":` {
				closing = "}}}"
			}
			doc := []byte(`{"usage":{` + inner + string(bytes.Repeat([]byte("["), n)) + string(bytes.Repeat([]byte("]"), n)) + closing)
			var top, ref topCaptures
			if ok, refOK := top.scan(doc, pathsFor(EndpointChat, false)), walkRef(&ref, doc, pathsFor(EndpointChat, false)); ok != refOK {
				t.Fatalf("depth %d %s: walk ok=%v, old walk %v", n, inner, ok, refOK)
			} else {
				seen[ok] = true
			}
		}
	}
	if !seen[true] || !seen[false] {
		t.Fatalf("the depths tried do not straddle the limit: %v", seen)
	}
}

// indexEOLRef is indexEOL before it searched with bytes.IndexByte.
func indexEOLRef(b []byte) int {
	for i, c := range b {
		if c == '\r' || c == '\n' {
			return i
		}
	}
	return len(b)
}

// FuzzIndexEOLSame: indexEOL finds the line end the byte loop found.
func FuzzIndexEOLSame(f *testing.F) {
	for _, s := range []string{"", "data: x\n", "a\rb\n", "\n\r", "abc", "data: {\"a\":1}\r\n\r\n", "x\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := indexEOL(b), indexEOLRef(b); got != want {
			t.Fatalf("%q: indexEOL %d, byte loop %d", b, got, want)
		}
	})
}
