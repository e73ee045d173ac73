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
	for _, s := range heldSeeds {
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
		checkHeldWalk(t, doc)
	})
}

// checkHeldWalk: on a valid object, the held walk of a stream's data
// value (fromMembers over the members the walk found, paths of one and
// two keys) captures exactly what the scanner captures, for every stream
// path table, also when its captures were last written from another
// document (the meter reuses them from event to event).
func checkHeldWalk(t *testing.T, doc []byte) {
	ms, _, _, ok := appendMembers(nil, doc)
	if !ok {
		return
	}
	prev := []byte(heldSeeds[0])
	prevMs, _, _, _ := appendMembers(nil, prev)
	for _, ep := range []Endpoint{EndpointChat, EndpointResponses, EndpointEmbeddings, EndpointMessages} {
		paths := pathsFor(ep, true)
		keys := sseTopKeys(ep)
		if !keys.held {
			t.Fatalf("%v: the held walk does not read its stream paths", ep)
		}
		var top topCaptures
		if !top.fromMembers(prev, prevMs, keys) || !top.fromMembers(doc, ms, keys) {
			t.Fatalf("%q: %v: the held walk refused a valid object", doc, ep)
		}
		s := newScan(paths)
		s.write(doc)
		for i := range paths {
			if !bytes.Equal(top.get(i), s.get(i)) || (top.get(i) == nil) != (s.get(i) == nil) {
				t.Fatalf("%q: %v: path %v: held walk %q, scanner %q", doc, ep, paths[i], top.get(i), s.get(i))
			}
		}
	}
}

// TestHeldPaths: the held walk takes the stream tables and refuses what
// it would not read as the scanner does.
func TestHeldPaths(t *testing.T) {
	for _, ep := range []Endpoint{EndpointChat, EndpointResponses, EndpointEmbeddings, EndpointMessages} {
		if !heldPaths(pathsFor(ep, true)) || !heldPaths(pathsFor(ep, false)) {
			t.Fatalf("%v: tables refused", ep)
		}
	}
	for _, tc := range []struct {
		paths [][]string
		want  bool
	}{
		{[][]string{{"a"}, nil, {"b", "c"}, {"b", "d"}, nil}, true},
		{[][]string{{"a", "b", "c"}}, false},
		{[][]string{{"a"}, {"a", "b"}}, false},
		{[][]string{{"a", "b"}, {"a"}}, false},
		{[][]string{{"a", "b"}, {"a", "b"}}, false},
		{[][]string{{"a"}, {"a"}}, false},
		{[][]string{{"b", "a"}, {"a"}}, true},
		{[][]string{{string(make([]byte, maxKeyLen+1))}}, false},
		{[][]string{{"a", `b\u0062`}}, false},
		{make([][]string, nPaths+1), false},
	} {
		if got := heldPaths(tc.paths); got != tc.want {
			t.Errorf("heldPaths(%q) = %v", tc.paths, got)
		}
	}
}
