package usage

import (
	"strings"
	"sync"
)

// A whole JSON answer (not a stream) of at most maxJSONHold bytes is
// copied aside as it is relayed (the agent gets every byte as it arrives)
// and read once at its end: a walk over its top-level members, checking
// the syntax as it goes, costs less than feeding the streaming scanner
// byte by byte. A longer answer (an embeddings list) goes through the
// streaming [jscan] from the moment it outgrows the bound, so memory stays
// bounded; an answer that is not one valid JSON object is read by the
// streaming scanner too, so every answer gets the scanner's reading
// (FuzzTopMembersSame: the walk captures what the scanner captures).

// maxJSONHold bounds the copy of a JSON answer.
const maxJSONHold = 16 << 10

// jsonBufs recycles the copies.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

func putJSONBuf(b *[]byte) {
	if cap(*b) <= maxJSONHold {
		*b = (*b)[:0]
		jsonBufs.Put(b)
	}
}

// topCaptures are the values of one-key paths in a JSON object: the same
// captures as a [jscan] over the same paths makes of a valid document.
type topCaptures struct {
	v    [nPaths][]byte
	done [nPaths]bool
	// usage is the "usage" object decoded during the walk (pre): exactly
	// parseUsage(v[pUsage]) with ok true, without a second pass over it
	// (FuzzTopUsageSame). pre is false when the walk left the decoding to
	// parseUsage: no object there, or one parseUsage refuses or hands to
	// encoding/json.
	usage usageFields
	pre   bool
	inner []member // fromInner's scratch (kept by a pooled stream meter)
}

// decoded is the usage object the walk decoded, or nil.
func (c *topCaptures) decoded() *usageFields {
	if !c.pre {
		return nil
	}
	return &c.usage
}

func (c *topCaptures) get(i int) []byte {
	if i < 0 || i >= nPaths {
		return nil
	}
	return c.v[i]
}

// onlyTopPaths reports whether every wanted path is one key long (the
// tables for whole JSON answers; SSE ones go deeper).
func onlyTopPaths(paths [][]string) bool {
	if len(paths) > nPaths {
		return false
	}
	for _, p := range paths {
		if len(p) > 1 {
			return false
		}
	}
	return true
}

// topKeys are the paths of one or two keys of a path table, for
// fromMembers.
type topKeys struct {
	mask uint64 // bit keyBit(k): a wanted key (one-key or outer) k may be this one
	n    int
	k    [nPaths]int    // path indices
	key  [nPaths]string // their keys
	// the two-key paths [outer, inner]
	n2    int
	k2    [nPaths]int
	outer [nPaths]string
	inner [nPaths]string
	// held: fromMembers captures exactly what a [jscan] over the same
	// paths captures (heldPaths).
	held bool
}

// keyBit hashes a key of n bytes that, with its closing quote, starts
// with byte c (a filter: one test skips most keys no path wants).
func keyBit(n int, c byte) uint64 { return 1 << ((uint(n)*7 + uint(c)) & 63) }

// wantBit is keyBit of the wanted key k.
func wantBit(k string) uint64 {
	if k == "" {
		return keyBit(0, '"')
	}
	return keyBit(len(k), k[0])
}

// topKeysOf lists the paths of one and two keys of paths (the first
// nPaths).
func topKeysOf(paths [][]string) topKeys {
	t := topKeys{held: heldPaths(paths)}
	for k, p := range paths[:min(len(paths), nPaths)] {
		switch len(p) {
		case 1:
			t.mask |= wantBit(p[0])
			t.k[t.n], t.key[t.n] = k, p[0]
			t.n++
		case 2:
			t.mask |= wantBit(p[0])
			t.k2[t.n2], t.outer[t.n2], t.inner[t.n2] = k, p[0], p[1]
			t.n2++
		}
	}
	return t
}

// heldPaths reports whether a walk of the top-level members (and of the
// object values of those that two-key paths go through) captures exactly
// what the scanner captures: at most nPaths paths, none deeper than two
// keys, none twice (empty ones capture nothing either way), no key the
// scanner cannot match (longer than maxKeyLen) or that the raw bytes of
// an escaped key could equal (a backslash or a quote in it), and no
// two-key path through a key a one-key path captures (the scanner starts
// no capture inside a value it is capturing, but does inside a later one
// of the same key).
func heldPaths(paths [][]string) bool {
	if len(paths) > nPaths {
		return false
	}
	for i, p := range paths {
		if len(p) > 2 {
			return false
		}
		for _, k := range p {
			if len(k) > maxKeyLen || strings.ContainsAny(k, `\"`) {
				return false
			}
		}
		for _, q := range paths[:i] {
			switch {
			case len(p) == 0 || len(q) == 0: // never captured
			case len(q) == len(p) && q[0] == p[0] && q[len(q)-1] == p[len(p)-1]:
				return false // twice
			case len(q) != len(p) && q[0] == p[0]:
				return false // [a] and [a, b]
			}
		}
	}
	return true
}

// fromMembers captures, from the members ms of the valid object data,
// what a [jscan] over the paths of tk captures (when tk.held): for a
// one-key path [a], the value of the first member a; for a two-key path
// [a, b], the value of the first member b of the first member a whose
// value is an object that has one, in document order. Escaped keys match
// none, as in the scanner. It runs on every event of a stream: it clears
// only what it may set (the captures of other paths stay nil, and c.usage
// is left as it was: pre false hides it), and compares a key with the
// wanted ones only when one has its keyBit. ok=false (with captures
// unset) when an object value does not read as the walk read it (cannot
// happen for a valid data: the caller scans it instead).
func (c *topCaptures) fromMembers(data []byte, ms []member, tk *topKeys) bool {
	for _, k := range tk.k[:tk.n] {
		c.v[k], c.done[k] = nil, false
	}
	for _, k := range tk.k2[:tk.n2] {
		c.v[k], c.done[k] = nil, false
	}
	c.pre = false
	for i := range ms {
		m := &ms[i]
		if m.esc || tk.mask&keyBit(m.keyEnd-m.keyStart-1, data[m.keyStart+1]) == 0 {
			continue
		}
		raw := m.raw(data)
		for j, k := range tk.k[:tk.n] {
			if !c.done[k] && string(raw) == tk.key[j] {
				c.v[k], c.done[k] = data[m.valStart:m.valEnd], true
			}
		}
		if tk.n2 > 0 && data[m.valStart] == '{' && !c.fromInner(data[m.valStart:m.valEnd], raw, tk) {
			for _, k := range tk.k2[:tk.n2] {
				c.v[k], c.done[k] = nil, false
			}
			return false
		}
	}
	return true
}

// fromInner captures, from the valid object obj (the value of a top-level
// member named outer), the first value of each member b of the two-key
// paths [outer, b] not captured yet, from obj's members (appendMembers).
func (c *topCaptures) fromInner(obj, outer []byte, tk *topKeys) bool {
	open := 0
	for j, k := range tk.k2[:tk.n2] {
		if !c.done[k] && string(outer) == tk.outer[j] {
			open++
		}
	}
	if open == 0 {
		return true
	}
	ms, _, _, ok := appendMembers(c.inner[:0], obj)
	c.inner = ms[:0]
	if !ok {
		return false
	}
	for i := range ms {
		m := &ms[i]
		if m.esc {
			continue // an escaped key matches none: no wanted key has a backslash
		}
		raw := m.raw(obj)
		for j, k := range tk.k2[:tk.n2] {
			if !c.done[k] && string(raw) == tk.inner[j] && string(outer) == tk.outer[j] {
				c.v[k], c.done[k] = obj[m.valStart:m.valEnd], true
				if open--; open == 0 {
					return true
				}
			}
		}
	}
	return true
}

// scan walks the object b, capturing the first value of every key that
// paths name. It returns false, with nothing captured, when b is not one
// valid JSON object.
func (c *topCaptures) scan(b []byte, paths [][]string) bool {
	*c = topCaptures{}
	ok := c.walk(b, paths)
	if !ok {
		*c = topCaptures{}
	}
	return ok
}

func (c *topCaptures) walk(b []byte, paths [][]string) bool {
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
		key := b[i+1 : ke-1] // raw: an escaped key matches no path, as in the scanner
		if i = skipSpace(b, ke); i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		ve, ok := c.value(b, i, key, paths)
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
}

// value checks the member value at b[i] (the walk's skipJSON) and returns
// the offset past it. The first "usage" object is decoded on the way: a
// decoding that succeeds has checked every byte at the same nesting depth
// as skipJSON (parseUsageObject), so only a refused one is checked again.
func (c *topCaptures) value(b []byte, i int, key []byte, paths [][]string) (int, bool) {
	if i >= len(b) || b[i] != '{' || c.done[pUsage] || len(paths) <= pUsage || len(paths[pUsage]) != 1 ||
		string(key) != paths[pUsage][0] || paths[pUsage][0] != "usage" {
		return skipJSON(b, i, 1)
	}
	c.usage = usageFields{}
	if end, res := parseUsageObject(b, i, 2, &c.usage); res == parseOK {
		c.pre = true
		return end, true
	}
	c.usage = usageFields{}
	return skipJSON(b, i, 1)
}
