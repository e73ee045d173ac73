// Package policy parses airlock's YAML policy strictly and answers which rule
// governs a request.
//
// # Parsing
//
// [Parse] walks the yaml.v3 node tree itself, so every problem (unknown key,
// wrong type, bad value, duplicate key or rule name) is reported with
// file:line:col and the key it concerns, and all problems are reported at
// once as an [ErrorList].
//
// # Matching
//
// Host patterns, methods and path globs are compiled at parse time. Rules are
// indexed by exact host and by wildcard suffix, so [Policy.Match] and
// [Policy.ConnectDecision] look at the few rules that can apply, in file
// order, without allocating. First matching rule wins.
//
// The proxy calls [Policy.Judge] with the raw request-target: it
// normalises the path once ([NormalizePath]: the path judged and the path
// forwarded cannot disagree), refuses paths upstreams read differently on
// rules that restrict paths (see [UnsafePaths], [ErrBadPath]), and returns
// the first matching rule. [Policy.Match] takes an already judged path. A
// path never includes the query string. Deny rules match paths
// case-insensitively and with or without a trailing slash.
//
// A rule host without a port matches the scheme default ports 443 and 80 only;
// "host:8443" matches port 8443 only. "*.example.com" matches any depth of
// subdomain ("a.example.com", "a.b.example.com") but not "example.com".
//
// # Grants
//
// Grants govern the SanctumAI door's non-HTTP actions. The grant actions are
// exactly list, use, retrieve, sign, encrypt, decrypt and http_header. "use"
// implies sign, encrypt, decrypt and http_request, but never retrieve or
// http_header, which hand the raw secret to the agent and must be granted by
// name. Deny by default: [Policy.Allowed] is false unless a grant matches.
package policy

import (
	"net/netip"
	"time"
)

// Actions a rule can take.
const (
	ActionInject = "inject" // forward with the rule's credential injected
	ActionAllow  = "allow"  // MITM and forward without a credential
	ActionTunnel = "tunnel" // splice TLS bytes untouched
	ActionDeny   = "deny"
	ActionAsk    = "ask" // egress.unmatched only: hold for a person's approval
)

// Egress modes.
const (
	ModeEnforce = "enforce" // deny what the policy denies
	ModeReport  = "report"  // forward would-be denials without credentials, log them
)

// Injection types.
const (
	InjectBearer = "bearer"
	InjectAPIKey = "api_key"
	InjectBasic  = "basic"
	InjectCustom = "custom"
	InjectQuery  = "query"
	InjectOAuth2 = "oauth2"
	InjectSigV4  = "aws_sigv4"
	// InjectPlaceholder injects nothing by itself: the agent writes
	// {{airlock:PATH}} where the secret goes (Inject.Placeholders is true).
	InjectPlaceholder = "placeholder"
)

// Usage meters (Rule.Usage).
const (
	UsageOpenAI    = "openai"
	UsageAnthropic = "anthropic"
	UsageNone      = "none"
)

// Approval memory (Approval.Remember, Approvals.Remember); a Go duration
// such as "1h" is the fourth form.
const (
	RememberSession = "session" // until airlock serve restarts
	RememberAlways  = "always"
	RememberOnce    = "once"
)

// Budget windows.
const (
	WindowHour    = "hour"  // calendar hour
	WindowDay     = "day"   // calendar day in the budget's time zone
	WindowMonth   = "month" // calendar month in the budget's time zone
	WindowRolling = "24h"   // the last 24 hours
)

// Defaults applied by Parse.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultMaxTTL    = 300 * time.Second
	DefaultAPIKeyHdr = "X-API-Key"
	// DefaultApprovalTimeout is how long a request waits for a person.
	DefaultApprovalTimeout = 120 * time.Second
	// DefaultReserveTokens is Rule.DefaultMaxTokens on a metered rule that
	// sets none.
	DefaultReserveTokens = 4096
)

// Policy is a parsed, validated policy. Immutable after Parse.
//
// Build policies with [Parse], [Load] or [Default]: a Policy assembled by
// hand has no compiled index and matches nothing.
type Policy struct {
	Version int
	Egress  Egress
	Rules   []*Rule
	Grants  []*Grant
	// Approvals configures human approval (rules with approval:, and
	// egress.unmatched: ask).
	Approvals Approvals
	Budgets   []Budget         // usage budgets, in file order
	Prices    map[string]Price // model → price; overrides/extends the shipped table
	File      string           // file name given to Parse
	Hash      string           // hex SHA-256 of the source bytes

	idx *index
}

// Egress holds the egress section.
type Egress struct {
	Unmatched     string         // ActionDeny (default), ActionTunnel or ActionAsk
	AllowNetworks []netip.Prefix // exempt from the private-network guard
	Mode          string         // ModeEnforce (default) or ModeReport
	UpstreamProxy string         // optional http://[user:pass@]host:port; may hold a password
}

// Rule is one rule, compiled.
type Rule struct {
	Name         string
	Agents       []string // empty: every agent
	Host         string   // lowercased pattern without port: "api.x.com", "*.x.com", "10.0.0.1", "::1"
	Port         int      // 0: the scheme's default (443 for https/CONNECT, 80 for http)
	Methods      []string // upper case; empty: any
	Paths        []string // globs; empty: any
	Action       string   // ActionInject when Credential is set, else ActionAllow, or tunnel/deny
	Credential   string   // vault path
	Inject       Inject
	InsecureHTTP bool
	RateLimit    *RateLimit
	Timeout      time.Duration     // default 60s
	Headers      map[string]string // static headers, set when the agent did not send them
	// HeadersOverride: static headers replace what the agent sent.
	HeadersOverride bool
	// KeepAgentAuth are auth headers (canonical form) the agent sent that
	// are kept on injection; every other one in [AuthHeaders] is stripped
	// (see [Rule.StripAuth]).
	KeepAgentAuth []string
	// Usage is the meter for the responses: UsageOpenAI, UsageAnthropic or
	// UsageNone. Default: openai for api.openai.com and *.openai.azure.com,
	// anthropic for api.anthropic.com, none otherwise.
	Usage string
	// DefaultMaxTokens is reserved against budgets when a request names no
	// max_tokens; DefaultReserveTokens on a metered rule, 0 when unmetered.
	DefaultMaxTokens int
	Approval         *Approval   // nil: no approval needed
	UnsafePaths      UnsafePaths // path features opted into; see [Policy.Judge]
	Line, Column     int         // position of the rule in the file

	host      hostPattern
	methods   uint16 // bit set of methodBit; 0: any
	paths     []glob
	stripAuth []string // StripAuth, computed at parse time
	pos       rulePos
}

// Approval says that a person approves each new (agent, rule) use.
type Approval struct {
	Required bool   // always true on a parsed rule (Rule.Approval is nil otherwise)
	Remember string // RememberSession, RememberAlways, RememberOnce or a Go duration ("1h")
}

// RememberFor returns the duration of a timed approval, 0 for the others.
func (a *Approval) RememberFor() time.Duration {
	if a == nil {
		return 0
	}
	d, _ := time.ParseDuration(a.Remember)
	return d
}

// Approvals is the approvals section.
type Approvals struct {
	Timeout  time.Duration // how long a request is held; default 120s
	Webhook  string        // optional notification URL; may be a secret (Slack): never log it
	Remember string        // default for rules' approvals: default RememberSession
}

// Budget caps usage over a window. Exactly one of Tokens and USD is set;
// at least one of Agent, Rule and Credential.
type Budget struct {
	Name                    string
	Agent, Rule, Credential string // scope; "" matches any
	Tokens                  int64
	USD                     float64
	Window                  string         // Window* constants
	Location                *time.Location // calendar windows' time zone; default UTC
	WarnAt                  float64        // 0: no warning; else a fraction in (0, 1)
	Line, Column            int

	pos budgetPos
}

// Applies reports whether the budget covers a use by agent of credential
// through rule.
func (b *Budget) Applies(agent, rule, credential string) bool {
	return (b.Agent == "" || b.Agent == agent) && (b.Rule == "" || b.Rule == rule) &&
		(b.Credential == "" || b.Credential == credential)
}

// Price is USD per million tokens.
type Price struct {
	Input, Output, CachedInput float64
}

// Inject says how the credential is put into the request. Parse fills in
// defaults: Type bearer; Header "Authorization" for bearer, basic and oauth2,
// "X-API-Key" for api_key.
type Inject struct {
	Type     string // Inject* constants; default bearer
	Header   string // api_key default "X-API-Key"; custom required; oauth2 optional override
	Format   string // optional template containing "{secret}" (bearer, api_key, custom, oauth2)
	Param    string // query parameter name
	Username string // basic: the user when the secret is only the password
	Region   string // aws_sigv4
	Service  string // aws_sigv4
	// Placeholders allows {{airlock:PATH}} substitution of this rule's
	// credential; always true for type placeholder.
	Placeholders bool
}

// RateLimit is "N/s|m|h" with a burst.
type RateLimit struct {
	Count int
	Per   time.Duration
	Burst int // default Count
}

// Grant allows non-HTTP actions over the SanctumAI door.
type Grant struct {
	Agents       []string      // empty: every agent
	Credentials  []string      // globs: "*", "openai/*", "*/api-key"
	Actions      []string      // as written, validated
	MaxTTL       time.Duration // caps retrieve leases; default 300s
	Line, Column int           // position of the grant in the file

	creds   []glob // nil entry: "*" alone, every credential
	actions uint16 // bit set of actionBit, "use" expanded
	pos     grantPos
}
