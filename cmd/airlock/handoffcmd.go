package main

// serve's hand-off socket: `airlock run --isolate` gives each isolated
// connection's socket to serve through it (SCM_RIGHTS), so serve reads the
// client directly (proxy/transparent/handoff.go). It lives in the home,
// which the isolated command cannot see.

import (
	"context"
	"errors"
	"fmt"
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
// alone (runs keep working through CONNECT); a stale one is replaced.
func startHandoff(ctx context.Context, srv *proxy.Server, path string, log *zap.Logger) (stop func(), err error) {
	if c, err := net.DialTimeout("unixpacket", path, time.Second); err == nil {
		c.Close()
		log.Warn("isolated runs will use CONNECT", zap.String("socket", path), zap.Error(errHandoffInUse))
		return func() {}, nil
	}
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, withHint(fmt.Errorf("hand-off socket: %w", err), "check that the airlock home is writable")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("hand-off socket: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := transparent.ServeHandoff(ctx, ln, srv.AuthenticateAgent, srv.HandleTransparent, log); err != nil {
			log.Error("hand-off socket stopped", zap.Error(err))
		}
	}()
	return func() {
		cancel()
		_ = os.Remove(path)
	}, nil
}
