package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"
)

// consoleUsage is /ui/api/usage's hour window as the console reads it.
type consoleUsage struct {
	Hour struct {
		Agents []struct {
			Name  string
			Total int64
		} `json:"agents"`
		Credentials []struct {
			Name  string
			Total int64
		} `json:"credentials"`
	} `json:"hour"`
}

type consoleBudgets struct {
	Budgets []struct {
		Name  string  `json:"name"`
		Unit  string  `json:"unit"`
		Used  float64 `json:"used"`
		Limit float64 `json:"limit"`
	} `json:"budgets"`
}

// adminJSON GETs path from the admin listener with the admin token.
func (e *env) adminJSON(path string, v any) error {
	resp, err := e.admin("GET", path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// TestConsoleServeUsageAndBudgets: after injected requests through the
// real serve (one of them a metered LLM call against a budget), the
// console's API shows the use per agent and per credential of the last
// hour and the budget with what it used.
func TestConsoleServeUsageAndBudgets(t *testing.T) {
	t.Parallel()
	const limit = 100000
	e, oai, _, agent := startUsageEnv(t, fmt.Sprintf("  - name: team\n    scope: {rule: openai}\n    limit: {tokens: %d}\n    window: day\n", limit), nil)
	c := e.client(agent)
	const n = 3
	for i := 0; i < n; i++ {
		if status, _, body := post(t, c, oai.URL+"/v1/chat/completions", chatJSONBody); status != 200 {
			t.Fatalf("chat %d: %d %s", i, status, body)
		}
	}
	waitFor(t, 10*time.Second, func() error {
		var u consoleUsage
		if err := e.adminJSON("/ui/api/usage", &u); err != nil {
			return err
		}
		if len(u.Hour.Agents) != 1 || u.Hour.Agents[0].Name != "bot" || u.Hour.Agents[0].Total != n {
			return fmt.Errorf("agents of the hour: %+v", u.Hour.Agents)
		}
		if len(u.Hour.Credentials) != 1 || u.Hour.Credentials[0].Name != "llm/openai" || u.Hour.Credentials[0].Total != n {
			return fmt.Errorf("credentials of the hour: %+v", u.Hour.Credentials)
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		var b consoleBudgets
		if err := e.adminJSON("/ui/api/budgets", &b); err != nil {
			return err
		}
		const per = 1234 + 567 // the fake's prompt + completion tokens
		if len(b.Budgets) != 1 || b.Budgets[0].Name != "team" || b.Budgets[0].Unit != "tokens" ||
			b.Budgets[0].Limit != limit || b.Budgets[0].Used != n*per {
			return fmt.Errorf("budgets: %+v", b.Budgets)
		}
		return nil
	})
}
