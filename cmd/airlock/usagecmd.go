package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock/airlock/proxy/usage"
)

// usageStatePath is where `airlock serve` persists usage and budget state
// (usage.OpenFile on this path).
func usageStatePath(h home) string { return filepath.Join(h.Dir(), "usage.json") }

// stateFlag declares --state on fs.
func stateFlag(fs *flagSet) *string {
	return fs.String("state", "", "usage state `FILE` (default HOME/usage.json, written by `airlock serve`)")
}

// loadUsageState reads the state file named by --state (or the home's).
func loadUsageState(g *globals, path string) (*usage.State, error) {
	if path == "" {
		path = usageStatePath(g.home)
	}
	st, err := usage.LoadState(path)
	if err != nil {
		return nil, withHint(err, "the file is written by `airlock serve`; point --state at another copy, or move it away to start from zero")
	}
	return st, nil
}

// usageShowCmd is `airlock usage [show]`: tokens and cost by a key.
func usageShowCmd(g *globals, fs *flagSet) runFunc {
	var o usageOptions
	fs.StringVar(&o.by, "by", "agent", "group by `KEY`: agent, model, credential or day")
	fs.StringVar(&o.since, "since", "7d", "how far back: a duration (7d, 24h) or a date (2026-11-01, UTC) (`WHEN`)")
	fs.BoolVar(&o.json, "json", false, "print one JSON document")
	state := stateFlag(fs)
	return func([]string) error {
		st, err := loadUsageState(g, *state)
		if err != nil {
			return err
		}
		return printUsageTable(Stdout, st, o, time.Now())
	}
}

// usageBudgetsCmd is `airlock usage budgets`: each budget with a bar.
func usageBudgetsCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print one JSON document")
	state := stateFlag(fs)
	return func([]string) error {
		st, err := loadUsageState(g, *state)
		if err != nil {
			return err
		}
		return printBudgets(Stdout, st, *asJSON, time.Now())
	}
}

// usageOptions are the parsed flags of `airlock usage show`.
type usageOptions struct {
	by    string
	since string
	json  bool
}

// parseSince turns --since into the first UTC day included.
func parseSince(s string, now time.Time) (string, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Format(time.DateOnly), nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return "", usageErrorf("--since %q: want a number of days (7d), a duration (12h) or a date (2026-11-01)", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return "", usageErrorf("--since %q: want a number of days (7d), a duration (12h) or a date (2026-11-01)", s)
		}
	}
	return now.Add(-d).UTC().Format(time.DateOnly), nil
}

// usageLine is one group of `airlock usage`.
type usageLine struct {
	Key      string       `json:"key"`
	Requests int64        `json:"requests"`
	NoUsage  int64        `json:"no_usage"`
	Partial  int64        `json:"partial"`
	Tokens   usage.Tokens `json:"tokens"`
	CostUSD  float64      `json:"cost_usd"`
	// Unpriced counts requests to models outside the price table: their
	// tokens are in Tokens, their cost is not in CostUSD.
	Unpriced int64 `json:"unpriced_requests"`
}

func (l *usageLine) add(r usage.Row) {
	l.Requests += r.Requests
	l.NoUsage += r.NoUsage
	l.Partial += r.Partial
	l.Tokens.Input += r.Tokens.Input
	l.Tokens.Output += r.Tokens.Output
	l.Tokens.CachedInput += r.Tokens.CachedInput
	l.Tokens.CacheWrite += r.Tokens.CacheWrite
	l.Tokens.Reasoning += r.Tokens.Reasoning
	l.CostUSD += float64(r.CostNano) / 1e9
	if r.Unpriced {
		l.Unpriced += r.Requests
	}
}

// groupUsage sums the rows from day since on, by key.
func groupUsage(rows []usage.Row, by, since string) ([]usageLine, usageLine, error) {
	keyOf := map[string]func(usage.Row) string{
		"agent":      func(r usage.Row) string { return r.Agent },
		"model":      func(r usage.Row) string { return r.Model },
		"credential": func(r usage.Row) string { return r.Credential },
		"day":        func(r usage.Row) string { return r.Day },
	}[by]
	if keyOf == nil {
		return nil, usageLine{}, usageErrorf("--by %q: want agent, model, credential or day", by)
	}
	groups := map[string]*usageLine{}
	total := usageLine{Key: "total"}
	for _, r := range rows {
		if r.Day < since {
			continue
		}
		k := keyOf(r)
		if groups[k] == nil {
			groups[k] = &usageLine{Key: k}
		}
		groups[k].add(r)
		total.add(r)
	}
	out := make([]usageLine, 0, len(groups))
	for _, l := range groups {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		if by == "day" {
			return out[i].Key < out[j].Key
		}
		if out[i].CostUSD != out[j].CostUSD {
			return out[i].CostUSD > out[j].CostUSD
		}
		return out[i].Key < out[j].Key
	})
	return out, total, nil
}

func printUsageTable(w io.Writer, st *usage.State, o usageOptions, now time.Time) error {
	since, err := parseSince(o.since, now)
	if err != nil {
		return err
	}
	lines, total, err := groupUsage(st.Usage, o.by, since)
	if err != nil {
		return err
	}
	if o.json {
		doc := struct {
			Since string      `json:"since"`
			By    string      `json:"by"`
			Rows  []usageLine `json:"rows"`
			Total usageLine   `json:"total"`
		}{since, o.by, lines, total}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tREQUESTS\tINPUT\tCACHED\tOUTPUT\tREASONING\tCOST USD\tNO USAGE\t\n", strings.ToUpper(o.by))
	unpriced := false
	for _, l := range append(lines, total) {
		cost := fmt.Sprintf("%.4f", l.CostUSD)
		if l.Unpriced > 0 {
			cost += "*"
			unpriced = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t\n", l.Key, l.Requests, l.Tokens.Input, l.Tokens.CachedInput,
			l.Tokens.Output, l.Tokens.Reasoning, cost, l.NoUsage)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "since %s (UTC). CACHED is part of INPUT, REASONING part of OUTPUT.\n", since)
	if unpriced {
		fmt.Fprintln(w, "* includes models outside the price table: their tokens are counted, their cost is not (add them under prices: in the policy)")
	}
	return nil
}

// bar draws ratio as 20 cells.
func bar(ratio float64) string {
	n := int(ratio*20 + 0.5)
	n = min(max(n, 0), 20)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", 20-n) + "]"
}

func printBudgets(w io.Writer, st *usage.State, asJSON bool, now time.Time) error {
	status, err := st.BudgetStatus(now)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Budgets []usage.BudgetStatus `json:"budgets"`
		}{status})
	}
	if len(status) == 0 {
		fmt.Fprintln(Stderr, "airlock: no budgets recorded")
		fmt.Fprintln(Stderr, "airlock: hint: add budgets: to the policy; `airlock serve` records them in the usage state file")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGET\tUSED\t\tUSED / LIMIT\tWINDOW\tRESETS")
	for _, s := range status {
		amount := fmt.Sprintf("%.0f / %.0f tokens", s.Used, s.Limit)
		if s.Unit == "usd" {
			amount = fmt.Sprintf("$%.4f / $%.2f", s.Used, s.Limit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%3.0f%%\t%s\t%s (%s)\t%s\n", s.Name, bar(s.Ratio), s.Ratio*100, amount, s.Window,
			s.Timezone, s.Reset.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}
