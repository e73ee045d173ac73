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
	Stream    bool
	MaxOutput int64 // max_tokens / max_completion_tokens / max_output_tokens, 0 = not given
	// InputEstimate is an upper-leaning guess of the input tokens: body
	// bytes / 3 (text is ~4 bytes a token in English, ~3 for most other
	// scripts; images and JSON punctuation make it larger still).
	InputEstimate int64
	// Rewritten: stream_options.include_usage was added, and the usage
	// chunk (and every "usage":null) must be stripped from the answer.
	Rewritten bool
	Oversize  bool // the body exceeded the bound: nothing parsed
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
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || f != f || f <= 0 {
		return 0
	}
	return int64(min(math.Ceil(f), maxOutputCap))
}

// laxBool reads true the way lenient parsers do: true, 1, "true", "1",
// "yes", "on", "t", "y" (any case).
func laxBool(raw json.RawMessage) bool {
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
	if limit <= 0 {
		limit = MaxRequestBody
	}
	info := &RequestInfo{Endpoint: ep}
	if r.Body == nil || r.Body == http.NoBody {
		return info, nil
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("usage: read request body: %w: %w", ErrRequestBody, err)
	}
	if int64(len(head)) > limit {
		info.Oversize = true
		size := r.ContentLength
		if size < int64(len(head)) {
			size = int64(len(head))
		}
		info.InputEstimate = (size + 2) / 3
		r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
		return info, nil
	}
	body := inspectBody(head, info)
	if !info.Rewritten {
		// the same bytes: keep the original closer and length (replacing
		// the body wholesale costs the relay ~30µs of first-event latency)
		r.Body = readCloser{bytes.NewReader(body), r.Body}
		return info, nil
	}
	setBody(r, body)
	return info, nil
}

// inspectBody fills info from a whole body and returns the body to send.
func inspectBody(body []byte, info *RequestInfo) []byte {
	info.InputEstimate = (int64(len(body)) + 2) / 3
	var f requestFields
	if json.Unmarshal(body, &f) != nil {
		return body // not a JSON object: the provider will say so; reserve the default
	}
	_ = json.Unmarshal(f.Model, &info.Model)
	info.Stream = laxBool(f.Stream)
	for _, raw := range []json.RawMessage{f.MaxTokens, f.MaxCompletionTokens, f.MaxOutputTokens} {
		info.MaxOutput = max(info.MaxOutput, laxInt(raw))
	}
	if info.Endpoint == EndpointChat && info.Stream && !includesUsage(f.StreamOptions) {
		if out, ok := addIncludeUsage(body); ok {
			info.Rewritten = true
			return out
		}
	}
	return body
}

func includesUsage(raw json.RawMessage) bool {
	var so struct {
		IncludeUsage json.RawMessage `json:"include_usage"`
	}
	// only a real true counts: anything else is rewritten to true
	return len(raw) > 0 && json.Unmarshal(raw, &so) == nil && string(bytes.TrimSpace(so.IncludeUsage)) == "true"
}

func setBody(r *http.Request, body []byte) {
	r.Body = readCloser{bytes.NewReader(body), r.Body}
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if r.Header.Get("Content-Length") != "" {
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	r.TransferEncoding = nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
