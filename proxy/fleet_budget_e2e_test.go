package proxy_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFleetBudgetE2E: 60 concurrent LLM requests spread over three
// replicas against a budget that fits 10: 10 reach the provider (never
// more), 50 get 429 BUDGET_EXCEEDED — the reservations are the fleet's.
func TestFleetBudgetE2E(t *testing.T) {
	r := startRedisE2E(t)
	budget, perRequest, _ := tenBudget()
	oai, ant := newOpenAIFake(t, func(f *llmFake) {
		f.prompt, f.completion, f.cached, f.extra = perRequest, 100, 0, 0
		f.gate = make(chan struct{})
	}), newAnthropicFake(t)
	base := newEnv(t)
	base.upCAFile = (&upstream{Server: oai.Server}).caFile(t)
	base.setSecret("llm/openai", usageOpenAIKey)
	base.setSecret("llm/anthropic", usageAnthropicKey)
	agent := base.addAgent("bot")
	base.writePolicy(strings.NewReplacer("{{OAI}}", oai.hostPort(), "{{ANT}}", ant.hostPort(), "{{BUDGETS}}", budget,
		"{{DOWN}}", closedPort(t)).Replace(usagePolicy))
	f := newFleet(t, base, r, 3)
	f.serveAll()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards codes
	codes := map[string]int{}
	for i := range 60 {
		c := f.replicas[i%3].client(agent)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, oai.URL+"/v1/chat/completions", strings.NewReader(concBody))
			resp, err := c.Do(req)
			k := "error"
			if err == nil {
				k = strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("X-Airlock-Error")
				resp.Body.Close()
			}
			mu.Lock()
			codes[k]++
			mu.Unlock()
		})
	}
	waitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if codes["429 BUDGET_EXCEEDED"] < 50 || oai.hits.Load() < 10 {
			return fmt.Errorf("upstream hits %d, answers %v", oai.hits.Load(), codes)
		}
		return nil
	})
	close(oai.gate)
	wg.Wait()
	if hits := oai.hits.Load(); hits != 10 || codes["200 "] != 10 || codes["429 BUDGET_EXCEEDED"] != 50 {
		t.Fatalf("upstream hits %d (want 10 over 3 replicas), answers %v", hits, codes)
	}
	assertAbsent(t, "redis", redisDump(t, r.client()), append(fleetSecretForms(usageOpenAIKey), fleetSecretForms(usageAnthropicKey)...))
}
