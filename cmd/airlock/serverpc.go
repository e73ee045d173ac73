package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy"
	"github.com/airlock/airlock/proxy/rpc"
)

// rpcFlags configure the SanctumAI door of `airlock serve`.
type rpcFlags struct {
	socket     string
	sessionTTL time.Duration
	handshake  time.Duration
}

func (f *rpcFlags) register(fs *flagSet, h home) {
	fs.StringVar(&f.socket, "socket", filepath.Join(h.Dir(), "airlock.sock"),
		"Unix socket `PATH` for SanctumAI SDK clients (mode 0600), or off")
	fs.DurationVar(&f.sessionTTL, "session-ttl", time.Hour, "SanctumAI session lifetime")
	fs.DurationVar(&f.handshake, "rpc-handshake-timeout", 10*time.Second,
		"time a SanctumAI client has to authenticate before its connection is closed")
}

// startRPC installs the SanctumAI door on the proxy port and, unless off,
// on the Unix socket. The returned stop function closes the socket.
func startRPC(ctx context.Context, srv *proxy.Server, f rpcFlags, log *zap.Logger) (func(), error) {
	door := rpc.New(srv, rpc.Options{Logger: log, Registerer: srv.Metrics().Registry, SessionTTL: f.sessionTTL,
		HandshakeTimeout: f.handshake})
	srv.SetRPC(door.ServeConn)
	if f.socket == "off" {
		return func() {}, nil
	}
	l, err := rpc.ListenUnix(f.socket)
	if err != nil {
		return nil, withHint(fmt.Errorf("rpc socket: %w", err), "pick another path with --socket, or --socket off")
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() { _ = door.ServeListener(ctx, l) }()
	return func() { cancel(); _ = l.Close() }, nil
}
