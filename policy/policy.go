// Package policy parses airlock's YAML policy strictly and answers which rule
// governs a request.
package policy

import (
	"errors"
	"net/netip"
	"time"
)

// STUB: the policy helper replaces bodies; types and signatures are the
// contract (fields may be added, not renamed).

var errTODO = errors.New("policy: not implemented")

// Actions a rule can take.
const (
	ActionInject = "inject" // forward with the rule's credential injected
	ActionAllow  = "allow"  // MITM and forward without a credential
	ActionTunnel = "tunnel" // splice TLS bytes untouched
	ActionDeny   = "deny"
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
)

// Policy is a parsed, validated policy. Immutable after Parse.
type Policy struct {
	Version int
	Egress  Egress
	Rules   []*Rule
	Grants  []*Grant
	File    string // file name given to Parse
	Hash    string // hex SHA-256 of the source bytes
}

// Egress holds the egress section.
type Egress struct {
	Unmatched     string         // ActionDeny (default) or ActionTunnel
	AllowNetworks []netip.Prefix // exempt from the private-network guard
	Mode          string         // "enforce" (default) or "report"
	UpstreamProxy string         // optional http://[user:pass@]host:port
}

// Rule is one rule, compiled.
type Rule struct {
	Name         string
	Agents       []string // empty: every agent
	Host         string   // lowercased pattern without port: "api.x.com" or "*.x.com"
	Port         int      // 0: the scheme's default (443 for https/CONNECT, 80 for http)
	Methods      []string // upper case; empty: any
	Paths        []string // globs; empty: any
	Action       string   // ActionInject when Credential is set, else ActionAllow, or tunnel/deny
	Credential   string   // vault path
	Inject       Inject
	InsecureHTTP bool
	RateLimit    *RateLimit
	Timeout      time.Duration // default 60s
	Line, Column int           // position of the rule in the file
}

// Inject says how the credential is put into the request.
type Inject struct {
	Type     string // Inject* constants; default bearer
	Header   string // api_key default "X-API-Key"; custom required; oauth2 optional override
	Format   string // optional template containing "{secret}"
	Param    string // query parameter name
	Username string // basic: the user when the secret is only the password
	Region   string // aws_sigv4
	Service  string // aws_sigv4
}

// RateLimit is "N/s|m|h" with a burst.
type RateLimit struct {
	Count int
	Per   time.Duration
	Burst int
}

// Grant allows non-HTTP actions over the SanctumAI door.
type Grant struct {
	Agents      []string
	Credentials []string // globs: "*", "openai/*", "*/api-key"
	Actions     []string
	MaxTTL      time.Duration
}

// Error is one problem at a position in the policy file.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return "" }

// Parse parses and validates a policy. file is used in error messages.
// On failure the error is an ErrorList (errors.As) of every problem found.
func Parse(file string, data []byte) (*Policy, error) { return nil, errTODO }

// Load reads and parses the file at path.
func Load(path string) (*Policy, error) { return nil, errTODO }

// ConnectDecision is the verdict for a CONNECT host:port by agent.
// It returns ActionTunnel, ActionDeny, or ActionInject/ActionAllow meaning
// "MITM and judge each request"; rule is nil when no rule named the host.
func (p *Policy) ConnectDecision(agent, host string, port int) (action string, rule *Rule) {
	return ActionDeny, nil
}

// Match returns the first rule matching agent, method, host, port and path,
// or nil.
func (p *Policy) Match(agent, method, host string, port int, path string) *Rule { return nil }

// Allowed returns the first grant letting agent perform action on credential.
func (p *Policy) Allowed(agent, credential, action string) (*Grant, bool) { return nil, false }
