package usage

import (
	"reflect"
	"testing"
)

// walkSame checks that the cache's walk of each object in turn gives
// exactly what a fresh appendMembers gives.
func walkSame(t *testing.T, objs ...[]byte) {
	t.Helper()
	var c memberCache
	for k, b := range objs {
		ms, open, closing, ok := c.walk(b)
		rms, ropen, rclosing, rok := appendMembers(nil, b)
		if ok != rok || ok && (open != ropen || closing != rclosing || !sameMembers(ms, rms)) {
			t.Fatalf("object %d %q after %q: walk %v %d %d %+v, fresh %v %d %d %+v", k, b, objs[max(k-1, 0)], ok, open, closing, ms, rok, ropen, rclosing, rms)
		}
	}
}

func sameMembers(a, b []member) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// TestMemberCacheEdges: objects sharing a prefix that ends inside a
// number, a string, a key, a literal, an escape, whitespace or the
// closing brace; a shared prefix after which the object is broken; the
// same object twice; and after a broken object.
func TestMemberCacheEdges(t *testing.T) {
	for _, tc := range []struct {
		name string
		objs []string
	}{
		{"number grows", []string{`{"created":123,"a":1}`, `{"created":1234,"a":1}`}},
		{"number grows at the end", []string{`{"a":1,"n":12}`, `{"a":1,"n":123}`}},
		{"number becomes a float", []string{`{"a":1,"n":12,"b":2}`, `{"a":1,"n":12.5,"b":2}`}},
		{"number becomes invalid", []string{`{"a":1,"n":12,"b":2}`, `{"a":1,"n":12e,"b":2}`}},
		{"number shrinks", []string{`{"n":1234,"a":1}`, `{"n":123,"a":1}`}},
		{"string grows", []string{`{"id":"chatcmpl-1","a":1}`, `{"id":"chatcmpl-12","a":1}`}},
		{"key grows", []string{`{"a":1,"usage":null}`, `{"a":1,"usagex":null}`}},
		{"literal", []string{`{"a":true,"b":null}`, `{"a":truex,"b":null}`}},
		{"escape", []string{`{"a":"x\"","b":1}`, `{"a":"x\"y","b":1}`}},
		{"escaped key", []string{`{"\u0075sage":null,"b":1}`, `{"\u0075sage":null,"b":2}`}},
		{"space", []string{`{"a":1 ,"b":2}`, `{"a":1  ,"b":2}`}},
		{"nested", []string{`{"a":{"b":[1,2]},"c":3}`, `{"a":{"b":[1,2]},"c":[}`}},
		{"broken after the prefix", []string{`{"a":1,"b":2}`, `{"a":1,"b":2`, `{"a":1,"b":2}x`}},
		{"members after the end", []string{`{"a":1,"b":2}`, `{"a":1}`, `{"a":1,"b":2,"c":3}`}},
		{"same twice", []string{`{"a":1,"b":[true]}`, `{"a":1,"b":[true]}`}},
		{"after a broken one", []string{`{"a":1,`, `{"a":1,"b":2}`, `{"a":1,"b":2}`}},
		{"not an object", []string{`{"a":1}`, `[1]`, `{"a":1}`}},
		{"chunks", []string{
			`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}`,
			`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hi there"}}],"usage":null}`,
			`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := make([][]byte, len(tc.objs))
			for i, o := range tc.objs {
				objs[i] = []byte(o)
			}
			walkSame(t, objs...)
		})
	}
}

// FuzzMemberCacheSame: walking b after a (b sharing a's first k bytes)
// resumes exactly: the members, braces and validity of a fresh walk.
func FuzzMemberCacheSame(f *testing.F) {
	f.Add([]byte(`{"created":123,"a":1}`), uint16(13), []byte(`4,"a":1}`))
	f.Add([]byte(`{"id":"x","choices":[{"delta":{"content":"a"}}],"usage":null}`), uint16(40), []byte(`b"}}],"usage":null}`))
	f.Add([]byte(`{"a":"\u0041","b":nul}`), uint16(17), []byte(`l}`))
	f.Fuzz(func(t *testing.T, a []byte, k uint16, tail []byte) {
		n := int(k) % (len(a) + 1)
		b := append(append([]byte{}, a[:n]...), tail...)
		walkSame(t, a, b, b, a)
	})
}

func TestCommonPrefix(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 0}, {"abc", "abd", 2}, {"0123456789abcdef", "0123456789abcdef", 16},
		{"0123456789abcdefX", "0123456789abcdefY", 16}, {"01234567", "01234568", 7}, {"0123456789", "0123456", 7},
	} {
		if got := commonPrefix([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("commonPrefix(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
