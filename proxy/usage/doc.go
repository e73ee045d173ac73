// Package usage meters LLM API calls from the providers' own usage figures
// and enforces token and USD budgets without overshoot.
//
// # What is metered
//
// OpenAI Chat Completions (JSON and SSE ending in [DONE]), Responses (JSON
// and SSE response.completed / response.incomplete / response.failed),
// Embeddings, and Anthropic Messages (JSON and SSE message_start +
// message_delta), on any host whose rule has that dialect ([Dialect]; the
// default comes from [DefaultDialect]). Counted per agent × rule ×
// credential × model: input, output, cached-input, cache-write and
// reasoning tokens ([Tokens]), requests by [Outcome], and cost from a
// [Prices] table (prices.yaml, embedded, overridable). A model outside the
// table is counted in tokens and flagged; its cost is never guessed, and
// its metrics label is [OtherModel].
//
// The response body is wrapped by a [Body]: it reads the upstream once and
// relays each byte as it arrives. A JSON answer of up to 16 KiB is also
// copied aside and walked once at its end; a longer one, and SSE, are
// parsed incrementally with bounded buffers (a streaming JSON path scanner
// keeps at most 64 KiB per wanted value, whatever the size of the body or
// event). The usage object is decoded without reflection, with exactly
// encoding/json's result (usagejson.go; fuzzed against it).
//
// A streaming Chat Completion that did not ask for usage gets
// stream_options.include_usage added ([InspectRequest]); the meter then
// removes the usage-only chunk and the "usage":null member the provider
// adds to every other chunk, so the agent receives byte for byte what it
// would have received without airlock (each held chunk is walked once,
// resuming after the members it shares byte for byte with the chunk
// before: jsonresume.go). Request bodies are read ahead up to
// [MaxRequestBody]; a longer one is relayed untouched, not rewritten, and
// reserved at the rule's default.
//
// # Pipeline integration
//
//	m, _ := usage.New(usage.Config{Store: st, Budgets: ..., Prices: ..., Metrics: ..., Log: ...})
//	// admission, after the rule matched, before injection:
//	tk, err := m.Admit(ctx, usage.Target{Agent, Rule, Credential, Dialect, DefaultMaxTokens}, req)
//	// err is *BudgetError → 429 BUDGET_EXCEEDED; tk == nil → not metered
//	// forward req (its body may have been rewritten); then either
//	tk.Wrap(resp)   // before the response body is relayed; Close/EOF commits
//	tk.WrapWaiting(resp, src, park) // the same, for a body whose source can
//	                // wait holding no buffer: the relay still parks the stream
//	tk.Abort()      // no response (upstream error, later refusal): releases
//
// # Budgets and the store
//
// At admission every covering [Budget] gets a [Claim] of the request's
// maximum (max output tokens, or the rule's default, plus an input
// estimate; in USD at the model's price, or the table's highest price when
// the model is unknown). [Store.Reserve] admits the request only if every
// claim fits: committed usage over the window + in-flight reservations +
// the claim <= limit. When the answer ends, [Store.Commit] drops the
// reservation and adds the real usage; a response without usage
// (aborted, cancelled, provider error) commits nothing but the record: the
// reservation is released. One exception guards against agents that
// switch usage reporting off with a body only the provider's parser
// accepts: a 2xx answer read to its end without any usage is charged its
// reservation (logged at Warn). Windows are
// calendar hour/day/month in the budget's time zone, or a rolling 24h
// summed from 5-minute buckets.
//
// The store is counter arithmetic over keys, so a Redis implementation can
// run each operation as one Lua script, atomically:
//
//	-- Reserve: KEYS = per claim: inflight key, then its bucket keys;
//	-- ARGV = id, now, expires, then per claim: nbuckets, limit, amount
//	-- 1. expire: for each id in ZRANGEBYSCORE holds -inf now: for each
//	--    (budget, amount) in HGETALL hold:<id>: DECRBY inflight:<budget> amount; DEL hold:<id>; ZREM holds id
//	-- 2. for each claim: used = sum(GET bucket) ; if used + GET inflight + amount > limit
//	--    then return {claim index, used, inflight, per-bucket values}
//	-- 3. for each claim: INCRBY inflight amount; HSET hold:<id> budget amount
//	-- 4. ZADD holds expires id; return ok
//	-- Commit: release as below, then INCRBY each charged bucket (EXPIRE 35d),
//	--   HINCRBY the usage row hash; Release: HGETALL hold:<id>, DECRBY each, DEL, ZREM.
//
// [MemStore] is the in-process store; [FileStore] persists it to a JSON
// file atomically (temp file, fsync, rename, fsync of the directory) so
// usage and budget state survive a restart.
//
// # Metrics
//
// airlock_llm_tokens_total{agent,rule,credential,model,kind},
// airlock_llm_cost_usd_total{agent,rule,credential,model},
// airlock_llm_requests_total{agent,rule,credential,model,outcome},
// airlock_budget_used_ratio{budget}, airlock_budget_rejections_total{budget},
// airlock_budget_warnings_total{budget} ([NewMetrics]).
package usage
