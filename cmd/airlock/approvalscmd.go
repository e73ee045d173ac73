package main

// `airlock approvals` and `airlock console`: clients of the approvals admin
// API served by `airlock serve` on its admin listener (proxy/console).
//
// Registered in the command table (commands.go) as the group `approvals`
// (list, the default; approve; deny; watch) and the leaf `console`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// approvalsAdminToken returns the admin token the CLI sends:
// AIRLOCK_ADMIN_TOKEN, else the vault's (admintoken.go). Tests replace it.
var approvalsAdminToken = cliAdminToken

// approvalsPoll is how often `approvals watch` asks for new entries.
var approvalsPoll = time.Second

// adminClient talks to the admin API.
type adminClient struct {
	base  string // "http://127.0.0.1:7700"
	token string
	http  *http.Client
}

// newAdminClient builds a client for the admin address addr.
func newAdminClient(g *globals, addr string) (*adminClient, error) {
	tok, err := approvalsAdminToken(g)
	if err != nil {
		return nil, err
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &adminClient{base: strings.TrimRight(base, "/"), token: tok, http: &http.Client{Timeout: 15 * time.Second}}, nil
}

// apiError is the admin API's error body.
type apiError struct {
	Code       string `json:"code"`
	Detail     string `json:"detail"`
	Suggestion string `json:"suggestion"`
}

// call sends one request and decodes the JSON answer into out.
func (c *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return withHint(fmt.Errorf("admin address %s: %w", c.base, err), "pass --admin HOST:PORT or set AIRLOCK_ADMIN")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return withHint(fmt.Errorf("cannot reach the admin listener of airlock serve at %s: %w", c.base, err),
			"start `airlock serve`, or pass --admin HOST:PORT (or set AIRLOCK_ADMIN) if it listens elsewhere")
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return withHint(errors.New("the admin API refused the admin token"),
			"set AIRLOCK_ADMIN_TOKEN to the current admin token of this airlock serve")
	}
	if resp.StatusCode/100 != 2 {
		var e apiError
		if json.Unmarshal(data, &e) == nil && e.Detail != "" {
			return withHint(errors.New(e.Detail), e.Suggestion)
		}
		return withHint(fmt.Errorf("admin API %s %s: %s", method, path, resp.Status),
			"is this airlock serve new enough to have the approvals API?")
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API %s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// pendingEntry is one held request as GET /v1/approvals lists it.
type pendingEntry struct {
	ID         string    `json:"id"`
	Agent      string    `json:"agent"`
	Rule       string    `json:"rule"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Unmatched  bool      `json:"unmatched"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
	Waiters    int       `json:"waiters"`
}

func (c *adminClient) pending(ctx context.Context) ([]pendingEntry, error) {
	var out struct {
		Pending []pendingEntry `json:"pending"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/approvals", nil, &out)
	return out.Pending, err
}

// adminFlag adds --admin to fs.
func adminFlag(fs *flagSet) *string {
	return fs.String("admin", envOr("AIRLOCK_ADMIN", "127.0.0.1:7700"), "admin address `HOST:PORT` of airlock serve (AIRLOCK_ADMIN sets the default)")
}

// approvalsListCmd is `airlock approvals [list] [--json]`.
func approvalsListCmd(g *globals, fs *flagSet) runFunc {
	asJSON := fs.Bool("json", false, "print one JSON document")
	admin := adminFlag(fs)
	return func([]string) error { return approvalsList(g, *admin, *asJSON) }
}

func approvalsList(g *globals, admin string, asJSON bool) error {
	c, err := newAdminClient(g, admin)
	if err != nil {
		return err
	}
	ps, err := c.pending(context.Background())
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"pending": ps})
	}
	if len(ps) == 0 {
		fmt.Fprintln(Stderr, "no requests are waiting for approval")
		return nil
	}
	tw := tabwriter.NewWriter(Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGENT\tMETHOD\tHOST\tPATH\tRULE\tAGE")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Agent, p.Method, p.Host, p.Path, ruleOrUnmatched(p), ageString(p.AgeSeconds))
	}
	return tw.Flush()
}

func ruleOrUnmatched(p pendingEntry) string {
	if p.Unmatched || p.Rule == "" {
		return "(no rule)"
	}
	return p.Rule
}

func ageString(s float64) string {
	return (time.Duration(s) * time.Second).String()
}

// approvalsApproveCmd is `approvals approve ID [--for D|--always|--once]`.
func approvalsApproveCmd(g *globals, fs *flagSet) runFunc {
	admin := adminFlag(fs)
	forD := fs.String("for", "", "remember the approval for `DURATION` (1h, 30m) or session")
	always := fs.Bool("always", false, "remember the approval for good (an unmatched host also gets a rule proposed in policy.proposed.yaml)")
	once := fs.Bool("once", false, "release only the held requests")
	return func(args []string) error {
		remember, err := rememberFlag(*forD, *always, *once)
		if err != nil {
			return err
		}
		return approvalsDecide(g, *admin, args[0], true, remember, "")
	}
}

// approvalsDenyCmd is `approvals deny ID [--reason TEXT]`.
func approvalsDenyCmd(g *globals, fs *flagSet) runFunc {
	admin := adminFlag(fs)
	reason := fs.String("reason", "", "why, shown to the agent (`TEXT`)")
	return func(args []string) error { return approvalsDecide(g, *admin, args[0], false, "", *reason) }
}

// approvalsDecide approves or denies the held entry id.
func approvalsDecide(g *globals, admin, id string, approve bool, remember, reason string) error {
	c, err := newAdminClient(g, admin)
	if err != nil {
		return err
	}
	verdict := "deny"
	if approve {
		verdict = "approve"
	}
	body := map[string]string{"approver": cliApprover()}
	if remember != "" {
		body["remember"] = remember
	}
	if reason != "" {
		body["reason"] = reason
	}
	var out struct {
		ID       string    `json:"id"`
		Approved bool      `json:"approved"`
		Remember string    `json:"remember"`
		Until    time.Time `json:"until"`
	}
	if err := c.call(context.Background(), http.MethodPost, "/v1/approvals/"+urlPathEscape(id)+"/"+verdict, body, &out); err != nil {
		return err
	}
	switch {
	case !out.Approved:
		fmt.Fprintf(Stdout, "denied %s\n", out.ID)
	case !out.Until.IsZero():
		fmt.Fprintf(Stdout, "approved %s until %s\n", out.ID, out.Until.Local().Format(time.RFC3339))
	default:
		fmt.Fprintf(Stdout, "approved %s (%s)\n", out.ID, out.Remember)
	}
	return nil
}

// rememberFlag turns --for/--always/--once into the API's remember value.
func rememberFlag(forD string, always, once bool) (string, error) {
	n := 0
	for _, set := range []bool{forD != "", always, once} {
		if set {
			n++
		}
	}
	if n > 1 {
		return "", usageError("approvals approve: give only one of --for, --always, --once")
	}
	switch {
	case always:
		return "always", nil
	case once:
		return "once", nil
	case forD == "" || forD == "session":
		return forD, nil
	}
	if d, err := time.ParseDuration(forD); err != nil || d <= 0 {
		return "", withHint(usageErrorf("approvals approve: --for %q is not a duration", forD), "use --for 1h, --for 30m or --for session")
	}
	return forD, nil
}

// cliApprover names the person at this terminal for the audit line.
func cliApprover() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// urlPathEscape escapes an id for a path segment.
func urlPathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// approvalsWatchCmd prints one line per new pending entry until Ctrl-C.
func approvalsWatchCmd(g *globals, fs *flagSet) runFunc {
	admin := adminFlag(fs)
	return func([]string) error { return approvalsWatch(g, *admin) }
}

func approvalsWatch(g *globals, admin string) error {
	c, err := newAdminClient(g, admin)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(Stderr, "watching for requests held for approval (Ctrl-C to stop)")
	return watchApprovals(ctx, c, Stdout, approvalsPoll)
}

// watchApprovals polls c every `every` and writes one line per entry not
// seen before; it returns nil when ctx ends. A failing poll is an error
// only when the first one fails (a restarting serve is waited for).
func watchApprovals(ctx context.Context, c *adminClient, w io.Writer, every time.Duration) error {
	seen := map[string]bool{}
	for first := true; ; first = false {
		ps, err := c.pending(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && first {
			return err
		}
		if err != nil {
			fmt.Fprintf(Stderr, "airlock: warning: %v (retrying)\n", err)
		}
		now := map[string]bool{}
		for _, p := range ps {
			now[p.ID] = true
			if !seen[p.ID] {
				fmt.Fprintf(w, "%s  %s  agent=%s  %s %s%s  rule=%s  approve: airlock approvals approve %s\n",
					p.Created.Local().Format("15:04:05"), p.ID, p.Agent, p.Method, p.Host, p.Path, ruleOrUnmatched(p), p.ID)
			}
		}
		if err == nil {
			seen = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// consoleCmd mints a one-time console login URL and prints it (and opens
// it with --open).
func consoleCmd(g *globals, fs *flagSet) runFunc {
	admin := adminFlag(fs)
	open := fs.Bool("open", false, "open the URL in the default browser")
	return func([]string) error { return consoleLogin(g, *admin, *open) }
}

func consoleLogin(g *globals, admin string, open bool) error {
	c, err := newAdminClient(g, admin)
	if err != nil {
		return err
	}
	var out struct {
		URL       string  `json:"url"`
		ExpiresIn float64 `json:"expires_in_seconds"`
	}
	if err := c.call(context.Background(), http.MethodPost, "/v1/console/login", nil, &out); err != nil {
		return err
	}
	fmt.Fprintln(Stdout, out.URL)
	fmt.Fprintf(Stderr, "one-time login URL: works once, within %s\n", time.Duration(out.ExpiresIn)*time.Second)
	if open {
		if err := openBrowser(out.URL); err != nil {
			return withHint(fmt.Errorf("open a browser: %w", err), "open the URL above yourself")
		}
	}
	return nil
}

// openBrowser hands url to the desktop's opener.
func openBrowser(url string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	cmd := exec.Command(name, url)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
