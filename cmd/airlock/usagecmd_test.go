package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/usage"
)

// usageHome writes a state file the way `airlock serve` does.
func usageHome(t *testing.T) home {
	t.Helper()
	h := home{dir: t.TempDir()}
	st, err := usage.OpenFile(usageStatePath(h), usage.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recs := []usage.Record{
		{Time: now, Agent: "bot", Rule: "openai", Credential: "openai/key", Model: "gpt-4o", Outcome: usage.OutcomeOK,
			Tokens: usage.Tokens{Input: 1000, Output: 200, CachedInput: 400, Reasoning: 50}, CostNano: 3_000_000},
		{Time: now, Agent: "bot", Rule: "claude", Credential: "anthropic/key", Model: "claude-sonnet-4-5", Outcome: usage.OutcomeOK,
			Tokens: usage.Tokens{Input: 10, Output: 20}, CostNano: 330_000},
		{Time: now, Agent: "helper", Rule: "local", Credential: "local/key", Model: "llama-3", Outcome: usage.OutcomeOK,
			Tokens: usage.Tokens{Input: 5, Output: 5}, Unpriced: true},
		{Time: now.Add(-30 * 24 * time.Hour), Agent: "old", Model: "gpt-4o", Outcome: usage.OutcomeOK, Tokens: usage.Tokens{Input: 1}},
	}
	team := usage.Budget{Name: "team", Agent: "bot", USD: 1, Window: "month"}
	for _, r := range recs {
		var charges []usage.Charge
		if r.Agent == "bot" {
			charges = []usage.Charge{{Bucket: team.Bucket(r.Time), Amount: r.CostNano}}
		}
		if err := st.Commit(context.Background(), "", charges, r); err != nil {
			t.Fatal(err)
		}
	}
	m, err := usage.New(usage.Config{Store: st, Budgets: []usage.Budget{team}})
	if err != nil || m == nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return h
}

func runUsageCmd(t *testing.T, h home, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	savedOut, savedErr := Stdout, Stderr
	Stdout, Stderr = &out, &errb
	defer func() { Stdout, Stderr = savedOut, savedErr }()
	err := runCommand(&globals{home: h, table: commands}, commands, append([]string{"usage"}, args...), "airlock")
	return out.String(), errb.String(), err
}

func TestUsageCommand(t *testing.T) {
	h := usageHome(t)
	out, _, err := runUsageCmd(t, h, "--by", "agent")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AGENT", "bot", "helper", "0.0033", "total", "0.0033*", "outside the price table"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old") {
		t.Errorf("--since 7d shows 30-day-old usage:\n%s", out)
	}
	out, _, err = runUsageCmd(t, h, "--by", "model", "--since", "60d", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rows []struct {
			Key      string
			Requests int64
			Tokens   usage.Tokens
		}
		Total struct{ Requests int64 }
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if doc.Total.Requests != 4 || len(doc.Rows) != 3 {
		t.Errorf("json %+v", doc)
	}
	out, _, err = runUsageCmd(t, h, "budgets")
	if err != nil || !strings.Contains(out, "team") || !strings.Contains(out, "$0.0033 / $1.00") || !strings.Contains(out, "[") {
		t.Errorf("budgets: %v\n%s", err, out)
	}
}

func TestUsageCommandBadInput(t *testing.T) {
	h := usageHome(t)
	for _, args := range [][]string{{"--by", "color"}, {"--since", "yesterday"}, {"frobnicate"}} {
		_, _, err := runUsageCmd(t, h, args...)
		var ue *usageErr
		if !errors.As(err, &ue) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
	_, _, err := runUsageCmd(t, h, "--state", "/nonexistent/dir/usage.json")
	if err != nil {
		t.Errorf("missing state file: %v (want an empty report)", err)
	}
}
