package usage

import "encoding/json"

// The usage object of every answer is decoded here without encoding/json
// (reflection and its allocations were a tenth of the meter's cost), with
// exactly encoding/json's result (FuzzUsageSame): json.Unmarshal into
// wireUsage. That decoder's rules, which this one follows: the whole input
// must be valid JSON, else nothing is decoded; keys match the fields
// case-insensitively and the last duplicate wins; a value of the wrong
// type for its field (a string, a float or an object where an integer is
// expected) is an error, and the caller then counts nothing; unknown keys
// are skipped whatever their type; null sets a pointer field to nil and
// leaves an integer alone. A key with an escape or a byte outside ASCII
// (Unicode case folding: "ſ" matches "s") goes to encoding/json itself.

// optInt is a decoded *int64 field (set: not nil) or, for a details
// object, whether the object is set and its one counted field.
type optInt struct {
	set bool
	v   int64
}

// usageFields is what json.Unmarshal into wireUsage sets, in values.
type usageFields struct {
	prompt, completion, input, output, cacheCreation, cacheRead optInt
	// the details objects: set = the pointer is not nil; v = its field
	promptCached, completionReasoning, inputCached, outputReasoning optInt
}

// usage field indices, in usageKeys order
const (
	uPrompt = iota
	uCompletion
	uInput
	uOutput
	uCacheCreation
	uCacheRead
	uPromptDetails
	uCompletionDetails
	uInputDetails
	uOutputDetails
	nUsageKeys
)

var usageKeys = [nUsageKeys]string{"prompt_tokens", "completion_tokens", "input_tokens", "output_tokens",
	"cache_creation_input_tokens", "cache_read_input_tokens",
	"prompt_tokens_details", "completion_tokens_details", "input_tokens_details", "output_tokens_details"}

// detailKeys is the one field each details object decodes.
var detailKeys = [nUsageKeys]string{uPromptDetails: "cached_tokens", uCompletionDetails: "reasoning_tokens",
	uInputDetails: "cached_tokens", uOutputDetails: "reasoning_tokens"}

func (u *usageFields) field(k int) *optInt {
	switch k {
	case uPrompt:
		return &u.prompt
	case uCompletion:
		return &u.completion
	case uInput:
		return &u.input
	case uOutput:
		return &u.output
	case uCacheCreation:
		return &u.cacheCreation
	case uCacheRead:
		return &u.cacheRead
	case uPromptDetails:
		return &u.promptCached
	case uCompletionDetails:
		return &u.completionReasoning
	case uInputDetails:
		return &u.inputCached
	}
	return &u.outputReasoning
}

// parseResult: decoded, an error (json.Unmarshal fails), or a key this
// decoder leaves to encoding/json.
type parseResult int

const (
	parseOK parseResult = iota
	parseErr
	parseFallback
)

// parseUsage decodes raw as json.Unmarshal(raw, &wireUsage{}) does; ok is
// false exactly when that returns an error.
func parseUsage(raw []byte) (usageFields, bool) {
	var u usageFields
	switch parseUsageInto(raw, &u) {
	case parseOK:
		return u, true
	case parseFallback:
		return parseUsageStd(raw)
	}
	return usageFields{}, false
}

// parseUsageStd is parseUsage by encoding/json (also the reference of
// FuzzUsageSame).
func parseUsageStd(raw []byte) (usageFields, bool) {
	var w wireUsage
	if json.Unmarshal(raw, &w) != nil {
		return usageFields{}, false
	}
	opt := func(p *int64) optInt {
		if p == nil {
			return optInt{}
		}
		return optInt{true, *p}
	}
	u := usageFields{prompt: opt(w.PromptTokens), completion: opt(w.CompletionTokens), input: opt(w.InputTokens),
		output: opt(w.OutputTokens), cacheCreation: opt(w.CacheCreation), cacheRead: opt(w.CacheRead)}
	if w.PromptDetails != nil {
		u.promptCached = optInt{true, w.PromptDetails.CachedTokens}
	}
	if w.CompletionDetails != nil {
		u.completionReasoning = optInt{true, w.CompletionDetails.ReasoningTokens}
	}
	if w.InputDetails != nil {
		u.inputCached = optInt{true, w.InputDetails.CachedTokens}
	}
	if w.OutputDetails != nil {
		u.outputReasoning = optInt{true, w.OutputDetails.ReasoningTokens}
	}
	return u, true
}

func parseUsageInto(b []byte, u *usageFields) parseResult {
	i := skipSpace(b, 0)
	if i >= len(b) {
		return parseErr
	}
	switch b[i] {
	case '{':
	case 'n': // null into a struct pointer: nothing set, no error
		if validJSON(b) {
			return parseOK
		}
		return parseErr
	default: // a syntax error or a type error: an error either way
		return parseErr
	}
	end, res := parseUsageObject(b, i, 1, u)
	if res == parseOK && skipSpace(b, end) != len(b) {
		return parseErr
	}
	return res
}

// parseUsageObject decodes the usage object at b[i] == '{' (nesting
// depth: 1 for a usage object on its own, more inside a document) into u
// and returns the offset just past it. parseOK means the object is valid
// JSON at that depth too: every byte was checked as skipObject checks it,
// with the same nesting limit.
func parseUsageObject(b []byte, i, depth int, u *usageFields) (int, parseResult) {
	return parseObject(b, i, depth, func(k int, b []byte, i int) (int, parseResult) {
		if k < uPromptDetails {
			return parseIntField(b, i, u.field(k), true)
		}
		return parseDetails(b, i, u.field(k), detailKeys[k], depth+1)
	}, usageKeys[:])
}

// parseObject walks the object at b[i] == '{' (nesting depth); a member
// whose key folds to keys[k] is decoded by val, every other value is
// checked and skipped.
func parseObject(b []byte, i, depth int, val func(k int, b []byte, i int) (int, parseResult), keys []string) (int, parseResult) {
	if depth > maxNesting {
		return i, parseErr
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, parseOK
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, parseErr
		}
		ks := i + 1
		ke, ok := skipString(b, i)
		if !ok {
			return ke, parseErr
		}
		key := b[ks : ke-1]
		for _, c := range key {
			if c == '\\' || c >= 0x80 {
				return ke, parseFallback
			}
		}
		if i = skipSpace(b, ke); i >= len(b) || b[i] != ':' {
			return i, parseErr
		}
		i = skipSpace(b, i+1)
		k := foldIndex(key, keys)
		res := parseOK
		if k >= 0 {
			i, res = val(k, b, i)
		} else if i, ok = skipJSON(b, i, depth); !ok {
			res = parseErr
		}
		if res != parseOK {
			return i, res
		}
		if i = skipSpace(b, i); i >= len(b) {
			return i, parseErr
		}
		switch b[i] {
		case '}':
			return i + 1, parseOK
		case ',':
			i = skipSpace(b, i+1)
		default:
			return i, parseErr
		}
	}
}

// foldIndex is the index of the key in keys that ASCII key equals up to
// case, or -1.
func foldIndex(key []byte, keys []string) int {
	for k, name := range keys {
		if len(name) == len(key) && (string(key) == name || asciiFold(key, name)) { // providers send the exact key: one memequal
			return k
		}
	}
	return -1
}

func asciiFold(b []byte, lower string) bool {
	for i := range len(b) {
		if c := b[i]; c != lower[i] && !('A' <= c && c <= 'Z' && c+('a'-'A') == lower[i]) {
			return false
		}
	}
	return true
}

// parseIntField decodes an int64 field: a pointer (null sets it to nil)
// or a plain integer (null leaves it alone).
func parseIntField(b []byte, i int, f *optInt, pointer bool) (int, parseResult) {
	if i >= len(b) {
		return i, parseErr
	}
	switch c := b[i]; {
	case c == 'n':
		end, ok := skipLiteral(b, i, "null")
		if !ok {
			return end, parseErr
		}
		if pointer {
			*f = optInt{}
		}
		return end, parseOK
	case c == '-' || c >= '0' && c <= '9':
		end, ok := skipNumber(b, i)
		if !ok {
			return end, parseErr
		}
		v, ok := parseInt64(b[i:end])
		if !ok {
			return end, parseErr // a float or out of range: a type error
		}
		f.set, f.v = true, v
		return end, parseOK
	}
	return i, parseErr // a string, bool, object or array: a type error
}

// parseInt64 is strconv.ParseInt(s, 10, 64) of a JSON number token.
func parseInt64(s []byte) (int64, bool) {
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(n), true // n == 1<<63 gives math.MinInt64
	}
	if n == 1<<63 {
		return 0, false
	}
	return int64(n), true
}

// parseDetails decodes a details object (a pointer to a struct with the
// one field key) at nesting depth: null sets it to nil; an object sets it, keeping the
// field of an earlier duplicate as encoding/json does.
func parseDetails(b []byte, i int, f *optInt, key string, depth int) (int, parseResult) {
	if i >= len(b) {
		return i, parseErr
	}
	switch b[i] {
	case 'n':
		end, ok := skipLiteral(b, i, "null")
		if !ok {
			return end, parseErr
		}
		*f = optInt{}
		return end, parseOK
	case '{':
		if !f.set {
			*f = optInt{set: true}
		}
		v := optInt{v: f.v}
		end, res := parseObject(b, i, depth, func(_ int, b []byte, i int) (int, parseResult) {
			return parseIntField(b, i, &v, false)
		}, []string{key})
		f.v = v.v
		return end, res
	}
	// a type error; the rest must still be valid JSON, but an error is an
	// error: nothing is counted either way
	return i, parseErr
}
