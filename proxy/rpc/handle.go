package rpc

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/audit"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/vault"
)

// call is one request in flight: its parameters and what the audit line
// and the metric need to know. It holds names only, never a secret.
type call struct {
	method     string
	params     json.RawMessage
	agent      string // claimed or authenticated agent name
	operation  string
	credential string
	host       string         // http_request: host of the URL
	status     int            // http_request: upstream status
	sensitive  bool           // the result hands out a secret: log at warning level
	dec        *door.Decision // the pipeline's decision; Done when recorded
	start      time.Time
}

type handler func(s *Server, ctx context.Context, cs *connState, c *call) (any, *Error)

// methods is the known method set; it also bounds the method label.
var methods = map[string]handler{
	"authenticate": func(s *Server, _ context.Context, cs *connState, c *call) (any, *Error) { return s.authenticate(cs, c) },
	"challenge_response": func(s *Server, _ context.Context, cs *connState, c *call) (any, *Error) {
		return s.challengeResponse(cs, c)
	},
	"list":          authed(listHandler),
	"retrieve":      authed(retrieveHandler),
	"release_lease": func(s *Server, _ context.Context, cs *connState, c *call) (any, *Error) { return s.releaseLease(cs, c) },
	"use":           authed(useHandler),
}

// authedHandler runs for a checked session of agent against snapshot d.
type authedHandler func(s *Server, ctx context.Context, d *vault.Data, c *call) (any, *Error)

type sessionParams struct {
	SessionID string `json:"session_id"`
}

// authed wraps h with the vault and session checks every credential method
// needs.
func authed(h authedHandler) handler {
	return func(s *Server, ctx context.Context, cs *connState, c *call) (any, *Error) {
		var p sessionParams
		if e := decodeParams(c.params, &p); e != nil {
			return nil, e
		}
		d := s.b.Snapshot()
		if d == nil {
			return nil, vaultLocked()
		}
		agent, e := s.sessionAgent(cs, d, p.SessionID)
		if e != nil {
			return nil, e
		}
		c.agent = agent
		return h(s, ctx, d, c)
	}
}

// handle answers one frame and records it.
func (s *Server) handle(ctx context.Context, cs *connState, frame []byte) response {
	c := &call{start: time.Now(), method: "invalid"}
	req, e := decodeRequest(frame)
	var result any
	if e == nil {
		h, ok := methods[req.Method]
		if ok {
			c.method, c.params = req.Method, req.Params
			result, e = s.safeCall(h, ctx, cs, c)
		} else {
			e = invalid("unknown method")
			e.Context["known_methods"] = []string{"authenticate", "challenge_response", "list", "retrieve", "release_lease", "use"}
		}
	}
	s.record(c, e)
	if e != nil {
		return response{ID: req.ID, Error: e}
	}
	if result == nil {
		result = struct{}{}
	}
	return response{ID: req.ID, Result: result}
}

// safeCall runs h, turning a panic into INTERNAL_ERROR so that one bad
// request cannot take the process down. The panic value is not logged: it
// could hold a secret.
func (s *Server) safeCall(h handler, ctx context.Context, cs *connState, c *call) (result any, e *Error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("rpc handler panicked", zap.String(audit.FieldMethod, c.method), zap.Stack(fieldStack))
			result, e = nil, internal("internal error")
		}
	}()
	return h(s, ctx, cs, c)
}
