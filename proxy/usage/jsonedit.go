package usage

import (
	"bytes"
	"encoding/json"
)

// member locates one member of a JSON object inside its byte slice b:
// b[keyStart] is the key's opening quote and b[keyEnd] its closing one,
// b[valStart:valEnd] the value. Offsets only, no pointers: a member list
// is written on every event of a stream, and pointers in it would cost
// a write barrier each while the GC runs.
type member struct {
	keyStart, keyEnd int
	valStart, valEnd int
	esc              bool // the key has escapes: its raw bytes are not the key
}

// raw is the key between its quotes as written (the key itself when
// !m.esc).
func (m *member) raw(b []byte) []byte { return b[m.keyStart+1 : m.keyEnd] }

// name is the decoded key.
func (m *member) name(b []byte) string {
	if !m.esc {
		return string(m.raw(b))
	}
	k, _ := unquote(b[m.keyStart : m.keyEnd+1]) // checked by appendMembers
	return k
}

// objectMembers returns the members of the JSON object b (surrounding
// whitespace allowed), its opening and closing brace offsets, and ok=false
// if b is not a valid JSON object. Byte offsets let callers edit b without
// re-encoding it, so every byte they do not touch stays as the sender wrote
// it.
func objectMembers(b []byte) (ms []member, open, closing int, ok bool) {
	return appendMembers(nil, b)
}

// appendMembers is objectMembers appending to ms (scratch reuse). It
// checks the syntax as it goes (exactly json.Valid: validJSON), in one
// pass.
func appendMembers(ms []member, b []byte) (_ []member, open, closing int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, 0, 0, false
	}
	open = i
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		if skipSpace(b, i+1) != len(b) {
			return nil, 0, 0, false
		}
		return ms, open, i, true
	}
	return walkMembers(ms, b, open, i, false)
}

// walkMembers walks the members of the object opened at b[open] from the
// key at b[i] or, afterValue, from just past the member value ending at
// b[i] (ms holding the members before it), as appendMembers does.
func walkMembers(ms []member, b []byte, open, i int, afterValue bool) (_ []member, _, closing int, ok bool) {
	for {
		if !afterValue {
			if i >= len(b) || b[i] != '"' {
				return nil, 0, 0, false
			}
			ks := i
			ke, ok := skipString(b, i)
			if !ok {
				return nil, 0, 0, false
			}
			m := member{keyStart: ks, keyEnd: ke - 1}
			m.esc = bytes.IndexByte(b[ks:ke], '\\') >= 0 // skipString checked the escapes: name decodes them
			if i = skipSpace(b, ke); i >= len(b) || b[i] != ':' {
				return nil, 0, 0, false
			}
			i = skipSpace(b, i+1)
			ve, ok := skipJSON(b, i, 1)
			if !ok {
				return nil, 0, 0, false
			}
			m.valStart, m.valEnd = i, ve
			ms = append(ms, m)
			i = ve
		}
		afterValue = false
		if i = skipSpace(b, i); i >= len(b) {
			return nil, 0, 0, false
		}
		switch b[i] {
		case '}':
			if skipSpace(b, i+1) != len(b) {
				return nil, 0, 0, false
			}
			return ms, open, i, true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return nil, 0, 0, false
		}
	}
}

func unquote(q []byte) (string, bool) {
	var k string
	err := json.Unmarshal(q, &k)
	return k, err == nil
}

func skipSpace(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' { // compact JSON: no space at all, one comparison
		return i
	}
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// find returns the index of the LAST member named key, or -1: with
// duplicate keys the providers' parsers (and encoding/json) keep the last
// one, so that is the one an edit must touch.
func find(b []byte, ms []member, key string) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].is(b, key) {
			return i
		}
	}
	return -1
}

func (m *member) is(b []byte, key string) bool {
	if m.esc {
		return m.name(b) == key
	}
	return string(m.raw(b)) == key
}

// removeMember returns b without member i of ms and the separator that
// joined it to its neighbour, so a compact or ", "-separated object reads
// as if the member had never been written.
func removeMember(b []byte, ms []member, i int) []byte {
	return appendWithout(nil, b, ms, i)
}

// appendWithout appends b without member i to dst.
func appendWithout(dst, b []byte, ms []member, i int) []byte {
	var from, to int
	switch {
	case i > 0:
		from, to = ms[i-1].valEnd, ms[i].valEnd
	case len(ms) > 1:
		from, to = ms[0].keyStart, ms[1].keyStart
	default:
		from, to = ms[0].keyStart, ms[0].valEnd
	}
	dst = append(dst, b[:from]...)
	return append(dst, b[to:]...)
}

// splice returns b with b[from:to] replaced by with, in a new slice; when
// owned (the caller's buffer is its own to edit) and b has the room, in b
// itself: the tail moves, nothing is allocated (a 100 KiB prompt is not
// copied again to add include_usage).
func splice(b []byte, from, to int, with string, owned bool) []byte {
	n, grow := len(b), len(with)-(to-from)
	if owned && grow <= cap(b)-n {
		b = b[:n+grow]
		copy(b[from+len(with):], b[to:n]) // memmove: the ranges may overlap
		copy(b[from:], with)
		return b
	}
	out := make([]byte, 0, len(b)-(to-from)+len(with))
	out = append(out, b[:from]...)
	out = append(out, with...)
	return append(out, b[to:]...)
}

// addIncludeUsage returns body with stream_options.include_usage set to
// true, editing only the bytes it must, in a new slice (body is left as
// it was). ok=false: the body has a shape it does not edit
// (stream_options neither an object nor null) and stays as is.
func addIncludeUsage(body []byte) ([]byte, bool) {
	ms, _, closing, ok := objectMembers(body)
	if !ok {
		return body, false
	}
	return addIncludeUsageTo(body, ms, closing, false)
}

// spliceRoom is the most an edit of addIncludeUsageTo adds.
const spliceRoom = len(`,"stream_options":{"include_usage":true}`)

// addIncludeUsageTo is addIncludeUsage given the members of the valid
// JSON object body and the offset of its closing brace (objectMembers);
// owned: body is the caller's to edit, in place when its capacity has
// spliceRoom to spare.
func addIncludeUsageTo(body []byte, ms []member, closing int, owned bool) ([]byte, bool) {
	i := find(body, ms, "stream_options")
	if i < 0 {
		if len(ms) == 0 {
			return splice(body, closing, closing, `"stream_options":{"include_usage":true}`, owned), true
		}
		end := ms[len(ms)-1].valEnd
		return splice(body, end, end, `,"stream_options":{"include_usage":true}`, owned), true
	}
	so := ms[i]
	val := body[so.valStart:so.valEnd]
	if string(val) == "null" {
		return splice(body, so.valStart, so.valEnd, `{"include_usage":true}`, owned), true
	}
	inner, open, _, ok := objectMembers(val)
	if !ok {
		return body, false
	}
	if j := find(val, inner, "include_usage"); j >= 0 {
		return splice(body, so.valStart+inner[j].valStart, so.valStart+inner[j].valEnd, "true", owned), true
	}
	ins := `"include_usage":true`
	if len(inner) > 0 {
		ins += ","
	}
	at := so.valStart + open + 1
	return splice(body, at, at, ins, owned), true
}
