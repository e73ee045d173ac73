package isolate

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/transparent"
)

// Handoff returns a Handler that gives each isolated connection's socket to
// the running serve over its hand-off socket at sockPath (no second TCP
// hop, no splice in this process), and the function closing it. When
// serve has no hand-off socket, or a connection cannot be handed off, the
// connection goes through ForwardCONNECT to proxyAddr instead. Past
// cred.ExpiresAt every new connection is refused here.
func Handoff(sockPath, proxyAddr string, cred Credential, log *zap.Logger) (transparent.Handler, func()) {
	if log == nil {
		log = zap.NewNop()
	}
	forward := ForwardCONNECT(proxyAddr, cred, log)
	s, err := transparent.DialHandoff(sockPath)
	if err != nil {
		log.Debug("no hand-off socket; forwarding as CONNECT", zap.Error(err))
		return forward, func() {}
	}
	return func(ctx context.Context, c *transparent.Conn) {
		if !cred.ExpiresAt.IsZero() && time.Now().After(cred.ExpiresAt) {
			log.Warn("isolated connection refused: run credential expired", zap.Time("expires_at", cred.ExpiresAt))
			c.Close()
			return
		}
		err := s.Send(c, cred.Agent, cred.Token)
		if errors.Is(err, transparent.ErrHandoff) {
			forward(ctx, c)
			return
		}
		if err != nil {
			log.Debug("hand-off close", zap.Error(err))
		}
	}, func() { s.Close() }
}
