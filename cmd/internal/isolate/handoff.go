package isolate

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/transparent"
)

// Handoff returns the Handlers that give each isolated connection's socket
// to the running serve over its hand-off socket at sockPath (no second
// TCP hop, no splice in this process): redirected for Options.Handler,
// proxy for Options.ProxyHandler (connections to the proxy port the
// child's HTTPS_PROXY names, served by serve as its proxy port serves
// them), and the function closing the socket. When serve has no hand-off
// socket, or a connection cannot be handed off, redirected connections go
// through ForwardCONNECT to proxyAddr and proxy connections are spliced
// to proxyAddr instead (proxy is nil without a socket). Past
// cred.ExpiresAt every new connection is refused here.
func Handoff(sockPath, proxyAddr string, cred Credential, log *zap.Logger) (redirected, proxy transparent.Handler, closeFn func()) {
	if log == nil {
		log = zap.NewNop()
	}
	forward := ForwardCONNECT(proxyAddr, cred, log)
	s, err := transparent.DialHandoff(sockPath)
	if err != nil {
		log.Debug("no hand-off socket; forwarding as CONNECT", zap.Error(err))
		return forward, nil, func() {}
	}
	send := func(fallback transparent.Handler) transparent.Handler {
		return func(ctx context.Context, c *transparent.Conn) {
			if !cred.ExpiresAt.IsZero() && time.Now().After(cred.ExpiresAt) {
				log.Warn("isolated connection refused: run credential expired", zap.Time("expires_at", cred.ExpiresAt))
				c.Close()
				return
			}
			err := s.Send(c, cred.Agent, cred.Token)
			if errors.Is(err, transparent.ErrHandoff) {
				fallback(ctx, c)
				return
			}
			if err != nil {
				log.Debug("hand-off close", zap.Error(err))
			}
		}
	}
	splice := func(ctx context.Context, c *transparent.Conn) { spliceToProxy(ctx, proxyAddr, c, log) }
	return send(forward), send(splice), func() { s.Close() }
}
