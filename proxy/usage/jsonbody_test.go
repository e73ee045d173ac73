package usage

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzTopMembersSame: on every document the walk accepts, it captures
// exactly what the streaming scanner captures; it refuses only what is not
// one valid JSON object (which then goes to the scanner itself).
func FuzzTopMembersSame(f *testing.F) {
	for _, s := range []string{
		`{"id":"x","model":"gpt-4o-2024-08-06","choices":[{"message":{"usage":1}}],"usage":{"prompt_tokens":3}}`,
		`{"usage":1,"usage":2,"model":null,"error":{"message":"m"},"type":"error"}`,
		` {"us\u0061ge":{"a":1},"usage" : 5 , "model":"a\"b"} `,
		`{"usage":{"a":[1,2,{"b":"}"}]}}`, `{}`, `[]`, `{"usage":1,}`, `{"usage":1} x`, `{"usage":01}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, ep := range []Endpoint{EndpointChat, EndpointResponses, EndpointEmbeddings, EndpointMessages} {
			paths := pathsFor(ep, false)
			if !onlyTopPaths(paths) {
				t.Fatalf("%v: JSON paths deeper than one key", ep)
			}
			var top topCaptures
			ok := top.scan(doc, paths)
			valid := json.Valid(doc)
			if isObject := valid && bytes.TrimLeft(doc, " \t\r\n")[0] == '{'; ok != isObject {
				t.Fatalf("%q: walk ok=%v, valid object %v", doc, ok, isObject)
			}
			if !ok {
				continue
			}
			s := newScan(paths)
			s.write(doc)
			for i := range paths {
				if !bytes.Equal(top.get(i), s.get(i)) || (top.get(i) == nil) != (s.get(i) == nil) {
					t.Fatalf("%q: path %v: walk %q, scanner %q", doc, paths[i], top.get(i), s.get(i))
				}
			}
		}
	})
}
