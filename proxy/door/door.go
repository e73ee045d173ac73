// Package door holds the shapes every front door hands airlock's pipeline
// ([Request]) and gets back from it ([Decision]), and the bounded names of
// doors and operations used as metric labels and audit fields.
//
// The pipeline itself is proxy.Server.Judge: the one place where policy,
// credential sources and injection meet. Doors that cannot import package
// proxy (the SanctumAI RPC door, package rpc) reach it through their own
// backend interface, which *proxy.Server implements with these types.
package door

import (
	"net/url"
	"sync"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/vault"
)

// Doors: how a request reached airlock (the "door" label and field).
const (
	Proxy       = "proxy"       // HTTP proxy port: CONNECT + MITM, or plain http://
	RPC         = "rpc"         // SanctumAI protocol (proxy port 0x00 frames, Unix socket)
	Transparent = "transparent" // redirected traffic (serve --transparent); no producer yet
)

// Operations: what the agent asks for (the "operation" label and field).
// Every one that touches a credential goes through the pipeline.
const (
	OpProxy       = "proxy"        // a proxied HTTP request (MITM'd or plain http://)
	OpHTTPRequest = "http_request" // rpc: airlock sends the request with the credential injected
	OpHTTPHeader  = "http_header"  // rpc: the header the rule would inject, handed to the agent
	OpRetrieve    = "retrieve"     // rpc: the raw value under a lease
	OpSign        = "sign"         // rpc: HMAC with the credential as key
	OpEncrypt     = "encrypt"      // rpc: AEAD with the credential as key
	OpDecrypt     = "decrypt"      // rpc: AEAD with the credential as key
)

// Operations lists the operations, for metrics and validation.
var Operations = []string{OpProxy, OpHTTPRequest, OpHTTPHeader, OpRetrieve, OpSign, OpEncrypt, OpDecrypt}

// Request is one credential operation (or proxied request) to judge.
type Request struct {
	Door      string // Proxy, RPC, Transparent
	Operation string // one of the Op constants
	Agent     string // the authenticated agent; "" only for the proxy door before authentication
	Method    string // HTTP method of HTTP operations; "" otherwise
	// URL is the target of HTTP operations (absolute http or https);
	// nil for operations on a credential alone (retrieve, sign, ...).
	URL *url.URL
	// Credential is the credential path the agent names (RPC door); ""
	// when the rule decides (proxied HTTP).
	Credential string
	// Actions are the grant actions any one of which allows the operation
	// (RPC door: "retrieve", "sign", "use", ...); none: no grant needed
	// (proxied HTTP, where rules decide).
	Actions []string
}

// Decision is the pipeline's verdict on a Request the agent may go ahead
// with. Its names are safe to log; Credential holds the secret.
type Decision struct {
	Agent  string
	Scheme string // "https" or "http" for HTTP operations
	Host   string // normalised (policy.NormalizeHost)
	Port   int
	Path   string // cleaned (policy.CleanPath)

	Rule       *policy.Rule      // the rule that matched or binds the credential; nil: none
	Grant      *policy.Grant     // the grant that allowed it (Request.Actions); nil: none asked
	Credential *vault.Credential // nil: nothing to inject
	// Verdict is what the audit line records: "inject", "allow",
	// "would_deny" (report mode let a policy denial through without the
	// credential), "use" (sign, encrypt, decrypt) or "hand_out" (retrieve,
	// http_header: the secret leaves airlock).
	Verdict string
	// State is the pipeline's own state of this decision; doors hand the
	// Decision back (Forward) and never touch it.
	State any

	once   sync.Once
	finish func(Outcome)
}

// Outcome is how an operation ended, for its audit line.
type Outcome struct {
	Status  int   // HTTP status sent or received; 0 for non-HTTP operations
	Bytes   int64 // body bytes sent to the agent
	Err     error // nil: success; refusals carry an errcode code
	Aborted bool  // a response stream was cut mid-body
}

// OnDone sets the function Done calls; the pipeline sets it.
func (d *Decision) OnDone(fn func(Outcome)) { d.finish = fn }

// Done records the outcome of the operation: one audit line (zap and the
// hash-chained file) and the metrics. Only the first call counts; a
// Decision without a recorder ignores it.
func (d *Decision) Done(o Outcome) {
	if d == nil {
		return
	}
	d.once.Do(func() {
		if d.finish != nil {
			d.finish(o)
		}
	})
}
