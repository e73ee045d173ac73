package usage

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// membersRef is the two-pass member scan appendMembers replaced:
// json.Valid, then a walk that trusts the syntax.
func membersRef(b []byte) (ms []member, open, closing int, ok bool) {
	if !json.Valid(b) {
		return nil, 0, 0, false
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, 0, 0, false
	}
	open = i
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		if b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		ks := i
		ke := skipValue(b, i)
		m := member{keyStart: ks, keyEnd: ke - 1}
		if q := b[ks:ke]; bytes.IndexByte(q, '\\') >= 0 {
			if _, ok := unquote(q); !ok {
				return nil, 0, 0, false
			}
			m.esc = true
		}
		i = skipSpace(b, ke)
		i = skipSpace(b, i+1) // ':'
		ve := skipValue(b, i)
		m.valStart, m.valEnd = i, ve
		ms = append(ms, m)
		i = skipSpace(b, ve)
	}
	return ms, open, i, true
}

// skipValue returns the offset just past the JSON value starting at b[i];
// b must be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && bytes.IndexByte([]byte(",}] \t\r\n"), b[j]) < 0 {
			j++
		}
		return j
	}
}

// FuzzMembersSame: the one-pass member scan finds what the two-pass one
// found (members, braces, validity).
func FuzzMembersSame(f *testing.F) {
	for _, s := range []string{`{}`, ` { } `, `{"a":1,"b":[1,{"c":"}"}],"d\u0041":null}`, `{"a":1,}`, `{"a" 1}`, `{"a":1} x`, `[]`, `{"a":"\q"}`, `{"stream":true,"stream_options":{"include_usage":false}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, open, closing, ok := appendMembers(nil, b)
		rms, ropen, rclosing, rok := membersRef(b)
		if ok != rok {
			t.Fatalf("%q: ok %v, reference %v", b, ok, rok)
		}
		if ok && (open != ropen || closing != rclosing || !reflect.DeepEqual(ms, rms)) {
			t.Fatalf("%q:\n%+v %d %d\n%+v %d %d", b, ms, open, closing, rms, ropen, rclosing)
		}
	})
}

// FuzzIncludeUsageInPlaceSame: the include_usage edit made in the body's
// own buffer (the request path's, with spliceRoom to spare) gives the
// bytes the copying edit gives, and the copying edit leaves its input as
// it was.
func FuzzIncludeUsageInPlaceSame(f *testing.F) {
	for _, s := range []string{`{"model":"m","stream":true}`, `{}`, `{"stream_options":null}`, `{"stream_options":{}}`,
		`{"stream_options":{"include_usage":false},"stream":true}`, `{"stream_options":{"x":1}}`, `{"a":1,"stream_options":{"include_usage":"no"},"b":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := append([]byte(nil), body...)
		want, wok := addIncludeUsage(body)
		if !bytes.Equal(body, orig) {
			t.Fatalf("%q: the copying edit changed its input to %q", orig, body)
		}
		own := append(make([]byte, 0, len(body)+spliceRoom), body...)
		ms, _, closing, ok := objectMembers(own)
		if !ok {
			return
		}
		got, gok := addIncludeUsageTo(own, ms, closing, true)
		if gok != wok || !bytes.Equal(got, want) {
			t.Fatalf("%q: in place %q (%v), copying %q (%v)", orig, got, gok, want, wok)
		}
		if gok && len(got) > 0 && &got[0] != &own[0] {
			t.Fatalf("%q: the edit with room to spare allocated", orig)
		}
	})
}
