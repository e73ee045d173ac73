// Package dialect translates the second SanctumAI dialect, the one the
// Rust SDK (sanctum-sdk-rust src/client.rs) and the pre-FFI Go client
// (github.com/jwgale/sanctum-sdk-go) speak, into the canonical protocol
// the RPC door serves (SANCTUM_PROTOCOL.md), and the door's answers back.
//
// # The dialect
//
//	auth.challenge      {agent}              → {challenge}
//	auth.verify         {agent, signature}   → {authenticated, session_id}
//	credential.list     {}                   → [ {path, type, ...}, ... ]
//	credential.retrieve {path, ttl}          → {path, value, lease_id, ttl, expires_at}
//	credential.use      {path, operation, params} → {success: true, output: <result>}
//	lease.release       {lease_id}           → {}
//
// No call carries a session id: auth.verify answers the challenge pending
// for that agent on the same connection, and later calls use the session
// the connection authenticated last. value is the secret as a JSON string
// (those clients do not hex-decode); a secret that is not valid UTF-8 is
// sent base64 with "value_encoding": "base64".
//
// # Use
//
// Per call, [Conn.Translate] recognises the dialect by method name (the
// names do not overlap the canonical ones) and gives the canonical frame;
// the door handles it as any other, so authorisation, audit and metrics are
// the canonical ones; [Conn.Answer] reshapes the canonical result. Error
// objects have the same shape in both dialects and pass through unchanged.
// This package does not import the door (the door imports it).
package dialect

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"unicode/utf8"
)

// The dialect's methods.
const (
	MethodChallenge = "auth.challenge"
	MethodVerify    = "auth.verify"
	MethodList      = "credential.list"
	MethodRetrieve  = "credential.retrieve"
	MethodUse       = "credential.use"
	MethodRelease   = "lease.release"
)

// canonical maps each dialect method to the door's method.
var canonical = map[string]string{
	MethodChallenge: "authenticate",
	MethodVerify:    "challenge_response",
	MethodList:      "list",
	MethodRetrieve:  "retrieve",
	MethodUse:       "use",
	MethodRelease:   "release_lease",
}

// Methods lists the dialect's methods (for an "unknown method" hint).
func Methods() []string {
	return []string{MethodChallenge, MethodVerify, MethodList, MethodRetrieve, MethodUse, MethodRelease}
}

// Is reports whether method belongs to the dialect.
func Is(method string) bool { _, ok := canonical[method]; return ok }

// CodeInvalidRequest is the code of every parameter [Error] (an answer it
// cannot reshape is INTERNAL_ERROR).
const CodeInvalidRequest = "INVALID_REQUEST"

// Error is a refusal by the translation itself, before the door sees the
// call: bad or unknown parameters. Param names the parameter at fault.
type Error struct {
	Code       string
	Message    string
	Suggestion string
	Param      string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// maxPending bounds the challenges one connection keeps pending (the door
// keeps at most 16 sessions per connection too).
const maxPending = 16

// Conn is one connection's dialect state. The zero value is ready. Only the
// connection's serving goroutine may use it.
type Conn struct {
	pending map[string]string // agent → session id of its pending challenge
	session string            // the session authenticated last
}

// Call is one translated request.
type Call struct {
	ID        json.RawMessage // as the client sent it
	Method    string          // the dialect method
	Canonical string          // the door's method
	Params    json.RawMessage // the door's params
	agent     string          // auth.challenge / auth.verify
	path      string          // credential.retrieve
	session   string          // auth.verify: the session it answers
}

// Frame is the canonical request frame body of c.
func (c *Call) Frame() []byte {
	b, _ := json.Marshal(struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}{c.ID, c.Canonical, c.Params})
	return b
}

// Translate reads a request frame body. ok is false when the frame is not
// a dialect call (not a JSON object, or another method): give it to the
// door unchanged. Otherwise exactly one of c and e is set; on e the answer
// carries id.
func (cn *Conn) Translate(frame []byte) (c *Call, id json.RawMessage, ok bool, e *Error) {
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(frame, &req) != nil || !Is(req.Method) {
		return nil, nil, false, nil
	}
	if len(req.ID) == 0 {
		req.ID = json.RawMessage("null")
	}
	c = &Call{ID: req.ID, Method: req.Method, Canonical: canonical[req.Method]}
	p, e := readParams(req.Params, specs[req.Method])
	if e != nil {
		return nil, req.ID, true, e
	}
	params := map[string]json.RawMessage{}
	switch req.Method {
	case MethodChallenge:
		c.agent = p.str("agent")
		params["agent_name"] = p["agent"]
	case MethodVerify:
		c.agent = p.str("agent")
		c.session = cn.pending[c.agent]
		delete(cn.pending, c.agent) // a challenge is answered once
		params["session_id"] = quote(c.session)
		params["signature"] = p["signature"]
	case MethodRelease:
		params["lease_id"] = p["lease_id"]
	default: // list, retrieve, use: the connection's session, never the client's
		for k, v := range p {
			params[k] = v
		}
		params["session_id"] = quote(cn.session)
		c.path = p.str("path")
	}
	c.Params, _ = json.Marshal(params)
	return c, req.ID, true, nil
}

// Answer turns the door's result for c into the dialect's and updates the
// connection's state. Call it only for a successful answer.
func (cn *Conn) Answer(c *Call, result json.RawMessage) (json.RawMessage, *Error) {
	var out any
	switch c.Method {
	case MethodChallenge:
		var r struct {
			SessionID string `json:"session_id"`
			Challenge string `json:"challenge"`
		}
		if json.Unmarshal(result, &r) != nil {
			return nil, internal()
		}
		if cn.pending == nil {
			cn.pending = map[string]string{}
		}
		if _, ok := cn.pending[c.agent]; !ok && len(cn.pending) >= maxPending {
			for a := range cn.pending { // drop any one: the door has dropped it too
				delete(cn.pending, a)
				break
			}
		}
		cn.pending[c.agent] = r.SessionID
		out = map[string]string{"challenge": r.Challenge}
	case MethodVerify:
		cn.session = c.session
		out = map[string]any{"authenticated": true, "session_id": c.session}
	case MethodList:
		var r struct {
			Credentials []json.RawMessage `json:"credentials"`
		}
		if json.Unmarshal(result, &r) != nil {
			return nil, internal()
		}
		if r.Credentials == nil {
			r.Credentials = []json.RawMessage{}
		}
		out = r.Credentials
	case MethodRetrieve:
		return retrieveAnswer(c, result)
	case MethodUse:
		out = map[string]any{"success": true, "output": result}
	default:
		return result, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, internal()
	}
	return b, nil
}

// retrieveAnswer adds path and turns the hex value into the secret itself.
func retrieveAnswer(c *Call, result json.RawMessage) (json.RawMessage, *Error) {
	var r map[string]json.RawMessage
	var hexValue string
	if json.Unmarshal(result, &r) != nil || json.Unmarshal(r["value"], &hexValue) != nil {
		return nil, internal()
	}
	secret, err := hex.DecodeString(hexValue)
	if err != nil {
		return nil, internal()
	}
	if utf8.Valid(secret) {
		r["value"], _ = json.Marshal(string(secret))
	} else {
		r["value"] = quote(base64.StdEncoding.EncodeToString(secret))
		r["value_encoding"] = quote("base64")
	}
	r["path"], _ = json.Marshal(c.path)
	b, err := json.Marshal(r)
	if err != nil {
		return nil, internal()
	}
	return b, nil
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func internal() *Error {
	return &Error{Code: "INTERNAL_ERROR", Message: "cannot translate the answer", Suggestion: "see the airlock log"}
}
