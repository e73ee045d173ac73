package usage

import (
	"encoding/binary"
	"math/bits"
)

// A strict JSON syntax checker that accepts exactly what json.Valid
// accepts (FuzzValidSame), without the reflection-free but byte-at-a-time
// state machine of encoding/json's scanner: the request body and the
// usage object are checked on every metered request.

// maxNesting is encoding/json's nesting limit (its scanner refuses a
// document nested deeper: "exceeded max depth").
const maxNesting = 10000

// validJSON reports whether b is one JSON value with optional surrounding
// whitespace, as json.Valid does.
func validJSON(b []byte) bool {
	i, ok := skipJSON(b, skipSpace(b, 0), 0)
	return ok && skipSpace(b, i) == len(b)
}

// skipJSON checks the JSON value starting at b[i] (no leading space) and
// returns the offset just past it; depth is the nesting of its container.
func skipJSON(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		return skipObject(b, i, depth+1)
	case c == '[':
		return skipArray(b, i, depth+1)
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return i, false
}

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// skipString checks the string starting at the quote b[i]. Bytes outside
// ASCII are not checked (encoding/json accepts invalid UTF-8 and replaces
// it when decoding); control characters and unknown escapes are errors.
// Eight bytes are read at a time, and the first quote, backslash or
// control character among them is found at once (specialMask): a short
// key costs one or two words, not a word per byte.
func skipString(b []byte, i int) (int, bool) {
	j := i + 1
	for {
		for j+8 <= len(b) {
			m := specialMask(binary.LittleEndian.Uint64(b[j:]))
			if m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j >= len(b) {
			return len(b), false
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return j, false
		case c == '\\':
			j++
			if j >= len(b) {
				return j, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return j, false
				}
				j += 4
			default:
				return j, false
			}
		}
		j++
	}
}

// hasSpecial reports whether one of the eight bytes of x is a quote, a
// backslash or a control character.
func hasSpecial(x uint64) bool { return specialMask(x) != 0 }

// specialMask has the high bit of a byte set for the bytes of x (little
// endian) that may be a quote, a backslash or a control character (the
// classic SWAR tests: a byte below n, a byte equal to zero). It is zero
// exactly when no byte is one, and its lowest set bit is exact: a test
// flags a byte wrongly only through a borrow from a lower byte that it
// flagged rightly.
func specialMask(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (x - ones*0x20) & ^x & highs
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return below | ((q - ones) &^ q & highs) | ((bs - ones) &^ bs & highs)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// skipObject checks the object starting at b[i] == '{'.
func skipObject(b []byte, i, depth int) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		var ok bool
		if i, ok = skipString(b, i); !ok {
			return i, false
		}
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return i, false
		}
		if i, ok = skipJSON(b, skipSpace(b, i+1), depth); !ok {
			return i, false
		}
		if i = skipSpace(b, i); i >= len(b) {
			return i, false
		}
		switch b[i] {
		case '}':
			return i + 1, true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return i, false
		}
	}
}

// skipArray checks the array starting at b[i] == '['.
func skipArray(b []byte, i, depth int) (int, bool) {
	if depth > maxNesting {
		return i, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = skipJSON(b, i, depth); !ok {
			return i, false
		}
		if i = skipSpace(b, i); i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ']':
			return i + 1, true
		case ',':
			i = skipSpace(b, i+1)
		default:
			return i, false
		}
	}
}
