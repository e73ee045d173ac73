package usage

import (
	"net/http"
	"strings"
)

// Dialect is the API family a rule's host speaks (the rule's `usage:` key).
type Dialect string

// The dialects.
const (
	DialectNone      Dialect = "none"
	DialectOpenAI    Dialect = "openai"
	DialectAnthropic Dialect = "anthropic"
)

// DefaultDialect is the dialect of a rule that has no `usage:` key: openai
// for api.openai.com and Azure OpenAI (*.openai.azure.com), anthropic for
// api.anthropic.com, none otherwise.
func DefaultDialect(host string) Dialect {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	switch {
	case host == "api.openai.com", strings.HasSuffix(host, ".openai.azure.com"):
		return DialectOpenAI
	case host == "api.anthropic.com":
		return DialectAnthropic
	}
	return DialectNone
}

// Endpoint is a metered API operation.
type Endpoint int

// The endpoints.
const (
	EndpointNone       Endpoint = iota
	EndpointChat                // POST …/chat/completions (and legacy …/completions)
	EndpointResponses           // POST …/responses
	EndpointEmbeddings          // POST …/embeddings
	EndpointMessages            // POST …/messages (Anthropic)
)

// EndpointOf classifies a request. Only POSTs to the known paths are
// metered; the path may carry any prefix (/v1, Azure's
// /openai/deployments/NAME, a compatible host's /api/v1).
func EndpointOf(d Dialect, method, path string) Endpoint {
	if method != http.MethodPost {
		return EndpointNone
	}
	path = strings.TrimSuffix(path, "/")
	switch d {
	case DialectOpenAI:
		switch {
		case strings.HasSuffix(path, "/chat/completions"), strings.HasSuffix(path, "/completions"):
			return EndpointChat
		case strings.HasSuffix(path, "/responses"):
			return EndpointResponses
		case strings.HasSuffix(path, "/embeddings"):
			return EndpointEmbeddings
		}
	case DialectAnthropic:
		if strings.HasSuffix(path, "/messages") {
			return EndpointMessages
		}
	}
	return EndpointNone
}

// Tokens are the counted figures of one response. CachedInput and
// CacheWrite are parts of Input; Reasoning is part of Output (as the
// providers bill them), so Input+Output is the total.
type Tokens struct {
	Input       int64 `json:"input"`
	Output      int64 `json:"output"`
	CachedInput int64 `json:"cached_input"`
	CacheWrite  int64 `json:"cache_write"`
	Reasoning   int64 `json:"reasoning"`
}

// Total is Input + Output.
func (t Tokens) Total() int64 { return t.Input + t.Output }

// wireUsage is the union of the providers' usage objects (the reference
// decoding; see usagejson.go).
type wireUsage struct {
	// Chat Completions, Embeddings
	PromptTokens     *int64 `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens"`
	PromptDetails    *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// Responses, Anthropic
	InputTokens  *int64 `json:"input_tokens"`
	OutputTokens *int64 `json:"output_tokens"`
	InputDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	// Anthropic
	CacheCreation *int64 `json:"cache_creation_input_tokens"`
	CacheRead     *int64 `json:"cache_read_input_tokens"`
}

// tally accumulates what a response reports about its usage.
type tally struct {
	seen     bool // some usage figure was read
	final    bool // the provider's final usage was read (not only message_start)
	errored  bool // the provider reported an error
	complete bool // a 2xx answer read to its end (set by Body)
	model    string
	oa       Tokens // OpenAI figures (last usage object wins)
	in, out  int64  // Anthropic fields, each replaced when reported again
	cc, cr   int64
	reported [4]bool // Anthropic: in, out, cc, cr seen
}

func pos(f optInt) int64 { return max(f.v, 0) }

// addOpenAI takes a Chat/Embeddings/Responses usage object.
func (t *tally) addOpenAI(raw []byte) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	u, ok := parseUsage(raw)
	if !ok {
		return
	}
	t.openAIFields(&u)
}

// openAIFields takes a decoded Chat/Embeddings/Responses usage object.
func (t *tally) openAIFields(u *usageFields) {
	var k Tokens
	switch {
	case u.prompt.set || u.completion.set:
		k.Input, k.Output = pos(u.prompt), pos(u.completion)
		k.CachedInput = pos(u.promptCached)
		k.Reasoning = pos(u.completionReasoning)
	case u.input.set || u.output.set:
		k.Input, k.Output = pos(u.input), pos(u.output)
		k.CachedInput = pos(u.inputCached)
		k.Reasoning = pos(u.outputReasoning)
	default:
		return
	}
	t.oa, t.seen, t.final = k, true, true
}

// addAnthropic takes a Messages usage object; final marks message_delta
// or a whole JSON message (message_start's figures are provisional).
func (t *tally) addAnthropic(raw []byte, final bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	u, ok := parseUsage(raw)
	if !ok {
		return
	}
	t.anthropicFields(&u, final)
}

// anthropicFields takes a decoded Messages usage object.
func (t *tally) anthropicFields(u *usageFields, final bool) {
	for i, f := range [...]struct {
		p   optInt
		dst *int64
	}{{u.input, &t.in}, {u.output, &t.out}, {u.cacheCreation, &t.cc}, {u.cacheRead, &t.cr}} {
		if f.p.set {
			*f.dst, t.reported[i] = pos(f.p), true
			t.seen = true
		}
	}
	if final && t.seen {
		t.final = true
	}
}

func (t *tally) setModel(raw []byte) {
	if t.model != "" || len(raw) == 0 {
		return
	}
	if !validJSON(raw) { // json.Unmarshal into a string fails: no model
		return
	}
	if s := modelString(raw); len(s) <= 200 {
		t.model = s
	}
}

// tokens returns the normalised figures.
func (t *tally) tokens(d Dialect) Tokens {
	if d != DialectAnthropic {
		return t.oa
	}
	return Tokens{Input: t.in + t.cc + t.cr, Output: t.out, CachedInput: t.cr, CacheWrite: t.cc}
}
