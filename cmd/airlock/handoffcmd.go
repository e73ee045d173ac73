package main

// serve's hand-off socket: `airlock run --isolate` gives each isolated
// connection's socket to serve through it (SCM_RIGHTS), so serve reads the
// client directly (proxy/transparent/handoff.go). It lives in the home,
// which the isolated command cannot see.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/transparent"
)

// handoffPath is serve's hand-off socket in the home.
func handoffPath(h home) string { return filepath.Join(h.Dir(), "run.sock") }

// errHandoffInUse: another serve holds the home's hand-off socket.
var errHandoffInUse = errors.New("hand-off socket in use by another airlock serve")

// startHandoff serves the hand-off socket at path with srv's transparent
// door until the returned stop. A socket another serve answers on is left
// alone, a stale one replaced; when none can be opened serve still runs
// (isolated runs fall back to CONNECT), so it never fails.
func startHandoff(ctx context.Context, srv *proxy.Server, path string, log *zap.Logger) (stop func()) {
	if c, err := net.DialTimeout("unixpacket", path, time.Second); err == nil {
		c.Close()
		log.Warn("isolated runs will use CONNECT", zap.String("socket", path), zap.Error(errHandoffInUse))
		return func() {}
	}
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err == nil {
		if err = os.Chmod(path, 0o600); err != nil {
			ln.Close()
		}
	}
	if err != nil { // a read-only home, or no seqpacket sockets (macOS): runs use CONNECT
		log.Warn("isolated runs will use CONNECT", zap.String("socket", path), zap.Error(err))
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { // not waited for: live hand-offs end with their connections
		if err := transparent.ServeHandoff(ctx, ln, srv.AuthenticateAgent, srv.HandleTransparent, log); err != nil {
			log.Error("hand-off socket stopped", zap.Error(err))
		}
	}()
	return func() {
		cancel()
		_ = os.Remove(path)
	}
}
