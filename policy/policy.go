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
// Paths are matched as given: callers clean them first with [CleanPath] (the
// proxy does), so "/v1/../admin" is judged as "/admin". A path never includes
// the query string.
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
)

// Defaults applied by Parse.
const (
	DefaultTimeout   = 60 * time.Second
	DefaultMaxTTL    = 300 * time.Second
	DefaultAPIKeyHdr = "X-API-Key"
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
	File    string // file name given to Parse
	Hash    string // hex SHA-256 of the source bytes

	idx *index
}

// Egress holds the egress section.
type Egress struct {
	Unmatched     string         // ActionDeny (default) or ActionTunnel
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
	Headers      map[string]string // extra static headers set on forwarded requests
	Line, Column int               // position of the rule in the file

	host    hostPattern
	methods uint16 // bit set of methodBit; 0: any
	paths   []glob
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
}
