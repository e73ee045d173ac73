package approval

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock/airlock/policy"
	"gopkg.in/yaml.v3"
)

func TestAlwaysOnUnmatchedWritesProposedRule(t *testing.T) {
	dir := t.TempDir()
	polPath := filepath.Join(dir, "policy.yaml")
	polText := "version: 1\nrules: []\n"
	os.WriteFile(polPath, []byte(polText), 0o644)
	proposed := filepath.Join(dir, ProposedFile)
	q, _, _ := newQueue(t, "", func(c *Config) { c.ProposedPath = proposed })

	reqs := []Request{
		{Agent: "research-bot", Method: "GET", Host: "api.example.com", Path: "/v1/items/42", Unmatched: true},
		{Agent: "research-bot", Method: "POST", Host: "api.example.com:8443", Path: "/", Unmatched: true},
		{Agent: "coder", Method: "CONNECT", Host: "git.example.org", Unmatched: true},
		// Hostile: a path trying to smuggle a second rule and a comment end.
		{Agent: "coder", Method: "GET", Host: "evil.example", Path: "/x\n- name: pwn\n  host: \"*\"\n#", Unmatched: true},
	}
	for _, r := range reqs {
		approveNext(t, q, r, RememberAlways)
	}
	frag, err := os.ReadFile(proposed)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("proposed", append([]byte("version: 1\nrules:\n"), frag...))
	if err != nil {
		t.Fatalf("proposed fragment does not parse:\n%s\n%v", frag, err)
	}
	if len(pol.Rules) != len(reqs) {
		t.Fatalf("%d rules, want %d:\n%s", len(pol.Rules), len(reqs), frag)
	}
	r0 := pol.Rules[0]
	if r0.Host != "api.example.com" || len(r0.Agents) != 1 || r0.Agents[0] != "research-bot" ||
		len(r0.Methods) != 1 || r0.Methods[0] != "GET" || len(r0.Paths) != 1 || r0.Paths[0] != "/v1/**" {
		t.Fatalf("rule 0 = %+v", r0)
	}
	for _, r := range pol.Rules {
		if r.Name == "pwn" {
			t.Fatalf("hostile path injected a rule:\n%s", frag)
		}
	}
	for _, want := range []string{"approved always by test for research-bot GET api.example.com/v1/items/42", "no rule matched"} {
		if !strings.Contains(string(frag), want) {
			t.Fatalf("fragment lacks %q:\n%s", want, frag)
		}
	}
	if got, _ := os.ReadFile(polPath); string(got) != polText {
		t.Fatal("policy.yaml was rewritten")
	}
	// Each approved host now passes without waiting.
	if d, err := q.Wait(context.Background(), Request{Agent: "research-bot", Method: "DELETE", Host: "api.example.com", Path: "/z", Unmatched: true}); err != nil || !d.Remembered {
		t.Fatalf("unmatched host after always: %v", err)
	}
}

func TestAlwaysOnRuleWritesNoProposal(t *testing.T) {
	proposed := filepath.Join(t.TempDir(), ProposedFile)
	q, _, _ := newQueue(t, "", func(c *Config) { c.ProposedPath = proposed })
	approveNext(t, q, botReq, RememberAlways)
	if _, err := os.Stat(proposed); !os.IsNotExist(err) {
		t.Fatalf("a rule's approval wrote %s (%v)", proposed, err)
	}
}

func TestProposedWriteFailureDecidesNothing(t *testing.T) {
	proposed := filepath.Join(t.TempDir(), "missing-dir", ProposedFile)
	q, _, _ := newQueue(t, "", func(c *Config) { c.ProposedPath = proposed })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Wait(ctx, Request{Agent: "a", Method: "GET", Host: "x.example", Path: "/", Unmatched: true})
	ps := waitPending(t, q, 1, 1)
	if _, err := q.Decide(context.Background(), ps[0].ID, Verdict{Approve: true, Remember: RememberAlways}); err == nil {
		t.Fatal("decision succeeded though the proposal was not written")
	}
	waitPending(t, q, 1, 1)
}

func FuzzProposedRule(f *testing.F) {
	f.Add("bot", "GET", "api.example.com", "/v1/x")
	f.Add("a", "CONNECT", "h:1", "")
	f.Add("a", "GET", "h", "/x\n- name: y\n#")
	f.Fuzz(func(t *testing.T, agent, method, host, path string) {
		p := Pending{ID: "ap-abc", Request: Request{Agent: agent, Method: method, Host: host, Path: path, Unmatched: true}}
		frag, err := ProposedRule(p, Decision{Approver: "x\ny", At: time.Unix(0, 0)})
		if err != nil {
			return
		}
		// Whatever the request held, the fragment is YAML for exactly one
		// rule with only the keys we write, its values the request's own.
		var items []map[string]any
		if err := yaml.Unmarshal(frag, &items); err != nil || len(items) != 1 {
			t.Fatalf("fragment is not one list item (%v):\n%s", err, frag)
		}
		for k := range items[0] {
			switch k {
			case "name", "agents", "host", "methods", "paths":
			default:
				t.Fatalf("unexpected key %q:\n%s", k, frag)
			}
		}
		if items[0]["host"] != host {
			t.Fatalf("host %q became %v", host, items[0]["host"])
		}
		pol, err := policy.Parse("f", append([]byte("version: 1\nrules:\n"), frag...))
		if err == nil && len(pol.Rules) != 1 {
			t.Fatalf("%d rules from one fragment:\n%s", len(pol.Rules), frag)
		}
	})
}
