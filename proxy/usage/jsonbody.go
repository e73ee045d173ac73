package usage

import "sync"

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

// topKeys are the one-key paths of a path table, for fromMembers.
type topKeys struct {
	lens uint64 // bit n: a wanted key is n bytes long (bit 63: 63 or more)
	n    int
	k    [nPaths]int    // path indices
	key  [nPaths]string // their keys
}

// topKeysOf lists the one-key paths of paths (the first nPaths).
func topKeysOf(paths [][]string) topKeys {
	var t topKeys
	for k, p := range paths[:min(len(paths), nPaths)] {
		if len(p) == 1 {
			t.lens |= 1 << min(len(p[0]), 63)
			t.k[t.n], t.key[t.n] = k, p[0]
			t.n++
		}
	}
	return t
}

// fromMembers captures, from the members ms of the object data, the
// first value of every key that tk lists (escaped keys match none, as in
// the scanner). It runs on every event of a stripped stream: it clears
// only what it may set (the captures of other paths stay nil, and
// c.usage is left as it was: pre false hides it), and compares a key
// with the wanted ones only when one has its length.
func (c *topCaptures) fromMembers(data []byte, ms []member, tk *topKeys) {
	for _, k := range tk.k[:tk.n] {
		c.v[k], c.done[k] = nil, false
	}
	c.pre = false
	for i := range ms {
		m := &ms[i]
		if m.esc || tk.lens&(1<<min(m.keyEnd-m.keyStart-1, 63)) == 0 {
			continue
		}
		raw := m.raw(data)
		for j, k := range tk.k[:tk.n] {
			if !c.done[k] && string(raw) == tk.key[j] {
				c.v[k], c.done[k] = data[m.valStart:m.valEnd], true
			}
		}
	}
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
