package rpc

import (
	"context"
	"encoding/json"
	"time"

	"github.com/airlock/airlock/proxy/rpc/dialect"
)

// handleFrame answers one frame in either dialect (package dialect): a
// call of the second dialect is translated to the canonical one and back,
// so the canonical handlers judge, audit and count it.
func (s *Server) handleFrame(ctx context.Context, cs *connState, dc *dialect.Conn, frame []byte) response {
	dcall, id, ok, de := dc.Translate(frame)
	if !ok {
		return s.handle(ctx, cs, frame)
	}
	if de != nil {
		e := fromDialect(de)
		s.record(&call{start: time.Now(), method: "invalid"}, e)
		return response{ID: id, Error: e}
	}
	resp := s.handle(ctx, cs, dcall.Frame())
	if resp.Error != nil {
		if !sdkTyped[resp.Error.Code] {
			// The Rust SDK decodes codes it does not know as UNKNOWN.
			if resp.Error.Context == nil {
				resp.Error.Context = map[string]any{}
			}
			resp.Error.Context["airlock_code"] = resp.Error.Code
		}
		return resp
	}
	raw, err := json.Marshal(resp.Result)
	if err != nil {
		return response{ID: resp.ID, Error: internal("cannot encode the result")}
	}
	out, de := dc.Answer(dcall, raw)
	if de != nil {
		return response{ID: resp.ID, Error: fromDialect(de)}
	}
	return response{ID: resp.ID, Result: out}
}

// newDialectConn is the dialect state of a new connection.
func newDialectConn() *dialect.Conn { return new(dialect.Conn) }

// checkOperation refuses unknown or missing params of sign, encrypt and
// decrypt (dialect.CheckOperationParams). useHandler calls it once the
// grant and credential are checked, so those errors keep precedence.
func checkOperation(operation string, params json.RawMessage) *Error {
	if de := dialect.CheckOperationParams(operation, params); de != nil {
		return fromDialect(de)
	}
	return nil
}

// sdkTyped are the codes every SDK maps onto a typed error.
var sdkTyped = map[string]bool{
	CodeAuthFailed: true, CodeAccessDenied: true, CodeCredentialNotFound: true,
	CodeVaultLocked: true, CodeLeaseExpired: true, CodeRateLimited: true, CodeSessionExpired: true,
}

func fromDialect(de *dialect.Error) *Error {
	e := newError(de.Code, de.Message, de.Suggestion)
	if de.Param != "" {
		e.Context["param"] = de.Param
	}
	return e
}
