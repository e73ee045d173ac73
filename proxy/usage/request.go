package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxRequestBody is the default bound on the request bytes the meter reads
// ahead to find max_tokens and, for streaming Chat Completions, to add
// stream_options.include_usage. A longer body is relayed untouched (the
// buffered prefix, then the rest as it streams): no rewrite, and the
// reservation uses the rule's default_max_tokens and an input estimate from
// the Content-Length (or the bound when it is unknown).
const MaxRequestBody = 4 << 20

// RequestInfo is what the meter learnt from a request body.
type RequestInfo struct {
	Endpoint  Endpoint
	Model     string // the request's "model" ("" for Azure, whose path names a deployment)
	MaxOutput int64  // max_tokens / max_completion_tokens / max_output_tokens, 0 = not given
	// InputEstimate is an upper-leaning guess of the input tokens: body
	// bytes / 3 (text is ~4 bytes a token in English, ~3 for most other
	// scripts; images and JSON punctuation make it larger still).
	InputEstimate int64
	Stream        bool
	// Rewritten: stream_options.include_usage was added, and the usage
	// chunk (and every "usage":null) must be stripped from the answer.
	Rewritten bool
	Oversize  bool // the body exceeded the bound: nothing parsed
	// (the booleans last: one word for the three, in every ticket)
}

// requestFields are decoded leniently, each on its own: a provider's
// parser may accept what encoding/json refuses (100.0 for an integer,
// "true" for a boolean), and one odd field must not hide the others (that
// would let an agent stream without usage, or reserve nothing).
type requestFields struct {
	Model               json.RawMessage `json:"model"`
	Stream              json.RawMessage `json:"stream"`
	MaxTokens           json.RawMessage `json:"max_tokens"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
	MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
	StreamOptions       json.RawMessage `json:"stream_options"`
}

// maxOutputCap bounds a requested maximum (no model comes near it), so a
// hostile max_tokens cannot overflow a reservation.
const maxOutputCap = 1 << 32

// laxInt reads a JSON number or numeric string, clamped to [0, maxOutputCap].
func laxInt(raw json.RawMessage) int64 {
	if n, ok := plainInt(raw); ok && len(raw) > 0 {
		return n
	}
	return parsedInt(raw)
}

// parsedInt is laxInt without its plain-digits fast path: the value
// decoded when a string, then read by ParseFloat.
func parsedInt(raw json.RawMessage) int64 {
	if len(raw) == 0 {
		return 0
	}
	if raw[0] == '"' { // a JSON number never starts with a quote: only strings need decoding
		var s string
		if json.Unmarshal(raw, &s) == nil {
			raw = json.RawMessage(s)
		}
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || f != f || f <= 0 {
		return 0
	}
	return int64(min(math.Ceil(f), maxOutputCap))
}

// plainInt is laxInt of up to 9 ASCII digits, the usual max_tokens
// (ParseFloat costs a request more than the rest of its fields).
func plainInt(raw []byte) (int64, bool) {
	if len(raw) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// laxBool reads true the way lenient parsers do: true, 1, "true", "1",
// "yes", "on", "t", "y" (any case).
func laxBool(raw json.RawMessage) bool {
	switch string(raw) { // the common spellings, without decoding
	case "", "false", "null":
		return false
	case "true":
		return true
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	switch x := v.(type) {
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes", "on", "t", "y":
			return true
		}
	}
	return false
}

// InspectRequest reads up to limit bytes of r's body (limit <= 0:
// MaxRequestBody), learns the fields that size a reservation and, for a
// streaming Chat Completion that did not ask for usage, rewrites the body so
// the provider reports it. r.Body is always replaced by a reader of the
// same bytes (or the rewritten ones, with ContentLength and GetBody
// updated), so the caller forwards r as usual.
func InspectRequest(r *http.Request, ep Endpoint, limit int64) (*RequestInfo, error) {
	info := new(RequestInfo)
	if err := inspectRequest(r, ep, limit, info, nil); err != nil {
		return nil, err
	}
	return info, nil
}

// inspectRequest is InspectRequest filling *info; rb, when not nil, is
// the request body to use for the same bytes (a ticket's).
func inspectRequest(r *http.Request, ep Endpoint, limit int64, info *RequestInfo, rb *bytesBody) error {
	if limit <= 0 {
		limit = MaxRequestBody
	}
	*info = RequestInfo{Endpoint: ep}
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	head, err := readHead(r.Body, r.ContentLength, limit)
	if err != nil {
		return fmt.Errorf("usage: read request body: %w: %w", ErrRequestBody, err)
	}
	if int64(len(head)) > limit {
		info.Oversize = true
		size := r.ContentLength
		if size < int64(len(head)) {
			size = int64(len(head))
		}
		info.InputEstimate = (size + 2) / 3
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return nil
	}
	body := inspectBody(head, info)
	// the body is replaced by a reader of its bytes that closes the
	// original (replacing it wholesale costs the relay ~30µs of
	// first-event latency); a rewritten one changes the length too
	if rb == nil {
		rb = new(bytesBody)
	}
	rb.rd.Reset(body)
	rb.c = r.Body
	r.Body = rb
	if info.Rewritten {
		setLength(r, body)
	}
	return nil
}

// readHead reads body to its end or to limit+1 bytes, as
// io.ReadAll(io.LimitReader(body, limit+1)) does, in one allocation when
// the declared length (size, -1 unknown) is right.
func readHead(body io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		return io.ReadAll(io.LimitReader(body, limit+1))
	}
	// one byte more: the EOF read, or a longer body; and room for the
	// include_usage edit, made in place (addIncludeUsageTo)
	want := int(size) + 1
	buf := make([]byte, 0, want+spliceRoom)
	for len(buf) < want {
		n, err := body.Read(buf[len(buf):want])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	rest, err := io.ReadAll(io.LimitReader(body, limit+1-int64(len(buf))))
	return append(buf, rest...), err
}

// inspectBody fills info from a whole body and returns the body to send.
// The body's members are walked once, for the fields and for the edit.
func inspectBody(body []byte, info *RequestInfo) []byte {
	info.InputEstimate = (int64(len(body)) + 2) / 3
	var scratch [16]member // on the stack: most requests have fewer members
	ms, _, closing, walked := appendMembers(scratch[:0], body)
	var f requestFields
	if !(walked && fieldsFromMembers(body, ms, &f)) && !unmarshalFields(body, &f) {
		return body // not a JSON object: the provider will say so; reserve the default
	}
	info.Model = modelString(f.Model)
	info.Stream = laxBool(f.Stream)
	for _, raw := range []json.RawMessage{f.MaxTokens, f.MaxCompletionTokens, f.MaxOutputTokens} {
		info.MaxOutput = max(info.MaxOutput, laxInt(raw))
	}
	if info.Endpoint == EndpointChat && info.Stream && !includesUsage(f.StreamOptions) {
		out, ok := []byte(nil), false
		if walked {
			out, ok = addIncludeUsageTo(body, ms, closing, true) // body is readHead's
		} else {
			out, ok = addIncludeUsage(body)
		}
		if ok {
			info.Rewritten = true
			return out
		}
	}
	return body
}

// unmarshalFields is the encoding/json fallback of scanRequestFields (a
// function of its own so that f does not escape in the common case).
func unmarshalFields(body []byte, f *requestFields) bool {
	var g requestFields
	if json.Unmarshal(body, &g) != nil {
		return false
	}
	*f = g
	return true
}

func includesUsage(raw json.RawMessage) bool {
	return len(raw) > 0 && includesUsageJSON(raw)
}

// includesUsageJSON reads stream_options' include_usage as
// json.Unmarshal into a struct would (a key matched without case, the last
// one winning), by walking its members; a key outside ASCII or an object
// the walk refuses is decoded (FuzzIncludesUsageSame). Only a real true
// counts: anything else is rewritten to true.
func includesUsageJSON(raw json.RawMessage) bool {
	sp := memberScratch.Get().(*[]member)
	defer memberScratch.Put(sp)
	ms, _, _, ok := appendMembers((*sp)[:0], raw)
	*sp = ms[:0]
	if !ok {
		return includesUsageDecoded(raw)
	}
	var v []byte
	for i := range ms {
		m := &ms[i]
		key, ok := foldableKey(raw, m)
		if !ok {
			return includesUsageDecoded(raw) // Unicode folding: encoding/json's
		}
		if bytes.EqualFold(key, []byte("include_usage")) {
			v = raw[m.valStart:m.valEnd]
		}
	}
	return string(bytes.TrimSpace(v)) == "true"
}

// foldableKey is m's key as json.Unmarshal matches it to a struct field
// without case, decoded; ok=false when it has bytes outside ASCII (their
// Unicode folding is left to encoding/json).
func foldableKey(body []byte, m *member) (key []byte, ok bool) {
	key = m.raw(body)
	if m.esc {
		key = []byte(m.name(body))
	}
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return nil, false
		}
	}
	return key, true
}

// includesUsageDecoded is includesUsageJSON by json.Unmarshal.
func includesUsageDecoded(raw json.RawMessage) bool {
	var so struct {
		IncludeUsage json.RawMessage `json:"include_usage"`
	}
	return len(raw) > 0 && json.Unmarshal(raw, &so) == nil && string(bytes.TrimSpace(so.IncludeUsage)) == "true"
}

// setLength gives r, whose body now reads body, body's length. GetBody
// replays body when r had one (a request nobody could replay before stays
// so: that costs no closure per request).
func setLength(r *http.Request, body []byte) {
	r.ContentLength = int64(len(body))
	if r.GetBody != nil {
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	if _, ok := r.Header["Content-Length"]; ok { // canonical already: no Set and its canonicalisation
		r.Header["Content-Length"] = []string{strconv.Itoa(len(body))}
	} else if r.Header.Get("Content-Length") != "" { // a key not in canonical form
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	r.TransferEncoding = nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// bytesBody reads bytes and closes the original body, in one allocation.
type bytesBody struct {
	rd bytes.Reader
	c  io.Closer
}

func (b *bytesBody) Read(p []byte) (int, error) { return b.rd.Read(p) }
func (b *bytesBody) Close() error               { return b.c.Close() }

// models interns model names: every answer names one of a few, and the
// name would otherwise be allocated twice per request. The map is copied
// on write and read with one atomic load (a read lock is an atomic add
// that moves a cache line between the cores on every request).
var models struct {
	mu sync.Mutex                        // serialises writers
	m  atomic.Pointer[map[string]string] // at most maxModels entries; never modified once stored
}

const maxModels = 1024

// modelString is jsonString, interned when it has no escapes.
func modelString(raw []byte) string {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		return jsonString(raw)
	}
	name := raw[1 : n-1]
	if cur := models.m.Load(); cur != nil {
		if s, ok := (*cur)[string(name)]; ok {
			return s
		}
	}
	s := string(name)
	models.mu.Lock()
	defer models.mu.Unlock()
	cur := models.m.Load()
	if cur != nil && len(*cur) >= maxModels {
		return s
	}
	if cur != nil {
		if old, ok := (*cur)[s]; ok {
			return old
		}
	}
	next := make(map[string]string, 1+lenOf(cur))
	if cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	next[s] = s
	models.m.Store(&next)
	return s
}

// jsonString is json.Unmarshal of a valid JSON value into a string ("" when
// it is not a string), without decoding when it has no escapes.
func jsonString(raw []byte) string {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : n-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// memberScratch recycles scanRequestFields' member lists.
var memberScratch = sync.Pool{New: func() any { return new([]member) }}

// scanRequestFields fills f as json.Unmarshal would (the same raw values:
// keys matched case-insensitively, the last duplicate wins) from one pass
// over the top-level members, without decoding the messages. It returns
// false, leaving f alone, for what it does not decide itself: not a JSON
// object, or a key outside ASCII (encoding/json's Unicode key folding).
func scanRequestFields(body []byte, f *requestFields) bool {
	sp := memberScratch.Get().(*[]member)
	defer memberScratch.Put(sp)
	ms, _, _, ok := appendMembers((*sp)[:0], body)
	*sp = ms[:0]
	return ok && fieldsFromMembers(body, ms, f)
}

// fieldsFromMembers is scanRequestFields given the members ms of the
// valid JSON object body.
func fieldsFromMembers(body []byte, ms []member, f *requestFields) bool {
	var out requestFields
	for i := range ms {
		m := &ms[i]
		key, ok := foldableKey(body, m)
		if !ok {
			return false
		}
		var dst *json.RawMessage
		switch {
		case bytes.EqualFold(key, []byte("model")):
			dst = &out.Model
		case bytes.EqualFold(key, []byte("stream")):
			dst = &out.Stream
		case bytes.EqualFold(key, []byte("max_tokens")):
			dst = &out.MaxTokens
		case bytes.EqualFold(key, []byte("max_completion_tokens")):
			dst = &out.MaxCompletionTokens
		case bytes.EqualFold(key, []byte("max_output_tokens")):
			dst = &out.MaxOutputTokens
		case bytes.EqualFold(key, []byte("stream_options")):
			dst = &out.StreamOptions
		default:
			continue
		}
		*dst = body[m.valStart:m.valEnd]
	}
	*f = out
	return true
}
