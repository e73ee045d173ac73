package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

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

var operations = map[string]operation{
	"http_request": {[]string{"use", "http_request"}, httpRequest},
	"http_header":  {[]string{"http_header"}, httpHeader},
	"sign":         {[]string{"sign", "use"}, sign},
	"encrypt":      {[]string{"encrypt", "use"}, encrypt},
	"decrypt":      {[]string{"decrypt", "use"}, decrypt},
}

func useHandler(s *Server, ctx context.Context, d *vault.Data, c *call) (any, *Error) {
	var p useParams
	if e := decodeParams(c.params, &p); e != nil {
		return nil, e
	}
	op, ok := operations[p.Operation]
	if !ok {
		return nil, invalid("unknown operation (want http_request, http_header, sign, encrypt or decrypt)")
	}
	c.operation = p.Operation
	cred, _, e := s.credential(d, c, p.Path, op.actions...)
	if e != nil {
		return nil, e
	}
	params := p.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	if e := checkOperation(p.Operation, params); e != nil {
		return nil, e
	}
	return op.run(s, ctx, c, cred, params)
}

// scrubber returns a function removing cred's value from s; the backend's
// messages should never hold it, this makes sure.
func scrubber(cred *vault.Credential) func(string) string {
	return func(s string) string {
		v := cred.Value.Bytes()
		if len(v) < 4 || !strings.Contains(s, string(v)) {
			return s
		}
		return strings.ReplaceAll(s, string(v), "[REDACTED]")
	}
}

func scrubBytes(b []byte, cred *vault.Credential) []byte {
	v := cred.Value.Bytes()
	if len(v) < 4 || !bytes.Contains(b, v) {
		return b
	}
	return bytes.ReplaceAll(b, v, []byte("[REDACTED]"))
}
