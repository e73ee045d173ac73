package rpc

import (
	"context"
	"encoding/json"

	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/proxy/internal/scrub"
	"github.com/airlock/airlock/vault"
)

type useParams struct {
	Path      string          `json:"path"`
	Operation string          `json:"operation"`
	Params    json.RawMessage `json:"params"`
}

// operation runs one `use` operation with a live, granted credential.
type operation struct {
	actions []string // grant actions, any of which allows it
	run     func(s *Server, ctx context.Context, c *call, cred *vault.Credential, params json.RawMessage) (any, *Error)
}

// httpRequestActions are the grant actions of http_request.
var httpRequestActions = []string{"use", "http_request"}

var operations = map[string]operation{
	"http_request": {httpRequestActions, httpRequest},
	"http_header":  {[]string{"http_header"}, httpHeader},
	"sign":         {[]string{"sign", "use"}, sign},
	"encrypt":      {[]string{"encrypt", "use"}, encrypt},
	"decrypt":      {[]string{"decrypt", "use"}, decrypt},
}

func useHandler(s *Server, ctx context.Context, _ *vault.Data, c *call) (any, *Error) {
	var p useParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	op, ok := operations[p.Operation]
	if !ok {
		return nil, invalid("unknown operation (want http_request, http_header, sign, encrypt or decrypt)")
	}
	c.operation = p.Operation
	params := p.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	if p.Operation == door.OpHTTPRequest { // judged with its URL (http.go)
		c.credential = p.Path
		if p.Path == "" {
			return nil, invalid("path is required")
		}
		return op.run(s, ctx, c, &vault.Credential{Path: p.Path}, params)
	}
	cred, _, e := s.credential(ctx, c, door.Request{Operation: p.Operation, Credential: p.Path}, op.actions...)
	if e != nil {
		return nil, e
	}
	if e := checkOperation(p.Operation, params); e != nil {
		return nil, e
	}
	return op.run(s, ctx, c, cred, params)
}

// replacer removes every encoded form of cred's value (scrub.Forms: raw,
// base64, URL-encoded, hex; values under scrub.MinLen are not scrubbed,
// as on the proxy door), or nil.
func replacer(cred *vault.Credential) *scrub.Replacer {
	forms := scrub.Forms(cred.Value.Bytes())
	if len(forms) == 0 {
		return nil
	}
	return scrub.NewReplacer(forms, []byte("[REDACTED]"))
}

// scrubber returns a function removing cred's value from s; the backend's
// messages should never hold it, this makes sure.
func scrubber(cred *vault.Credential) func(string) string {
	r := replacer(cred)
	return func(s string) string {
		if r == nil {
			return s
		}
		out, _ := r.ReplaceString(s)
		return out
	}
}

func scrubBytes(b []byte, cred *vault.Credential) []byte {
	r := replacer(cred)
	if r == nil {
		return b
	}
	out, _ := r.ReplaceAll(b)
	return out
}
