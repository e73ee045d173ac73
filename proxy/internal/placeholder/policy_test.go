package placeholder

import (
	"net/url"
	"testing"

	"github.com/airlock/airlock/policy"
)

// TestPolicyJudgesPlaceholderPath: the policy sees the path with the
// placeholder in it (before substitution), so a rule can name it exactly
// as the README shows; a path with the secret substituted does not match,
// and neither does another credential's placeholder.
func TestPolicyJudgesPlaceholderPath(t *testing.T) {
	p, err := policy.Parse("policy.yaml", []byte(`version: 1
rules:
  - name: telegram
    agents: [bot]
    host: api.telegram.org
    paths: ["/bot{{airlock:telegram/bot-token}}/*"]
    methods: [POST]
`))
	if err != nil {
		t.Fatal(err)
	}
	judge := func(raw string) bool {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return p.Match("bot", "POST", u.Hostname(), 443, policy.CleanPath(u.Path)) != nil
	}
	if !judge("https://api.telegram.org/bot%7B%7Bairlock:telegram/bot-token%7D%7D/sendMessage") {
		t.Error("the placeholder path (as Go's client escapes it) is not matched")
	}
	if !judge("https://api.telegram.org/bot{{airlock:telegram/bot-token}}/sendMessage") {
		t.Error("the placeholder path (literal braces) is not matched")
	}
	if judge("https://api.telegram.org/bot{{airlock:other/key}}/sendMessage") {
		t.Error("another credential's placeholder matched")
	}
	if judge("https://api.telegram.org/bot123:ABC/sendMessage") {
		t.Error("a literal token matched the placeholder rule")
	}
}
