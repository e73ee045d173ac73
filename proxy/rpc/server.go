package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/door"
	"github.com/airlock/airlock/vault"
)

// Backend is what the RPC door needs from the rest of airlock.
// *proxy.Server implements it.
type Backend interface {
	// Snapshot is the current vault data, or nil while the vault is sealed.
	Snapshot() *vault.Data
	// Policy is the policy in force; nil denies everything.
	Policy() *policy.Policy
	// Judge runs airlock's pipeline for one credential operation (the
	// door has checked the agent's grant): rule, rate limit, report mode,
	// the credential from its source. Refusals carry their code in an
	// ErrorCode() method and their suggestion in ErrorSuggestion()
	// (errcode.Coded, errcode.Suggested). The door calls Done on the
	// decision once the operation has run: that writes the audit line.
	Judge(ctx context.Context, r door.Request) (*door.Decision, error)
	// Forward sends req, judged by an http_request decision, through the
	// egress pipeline: the rule injects; the dial guard and scrubbing apply.
	Forward(ctx context.Context, d *door.Decision, req *http.Request) (*http.Response, error)
	// Header is the header the decision's rule injects with its credential
	// (what http_header hands out).
	Header(d *door.Decision) (name, value string, err error)
}

// Options tune a Server. Zero values take the defaults.
type Options struct {
	SessionTTL     time.Duration // default 1h
	ChallengeTTL   time.Duration // time to answer a challenge; default 1m
	IdleTimeout    time.Duration // a connection silent this long is closed; default 5m
	WriteTimeout   time.Duration // default 30s
	RequestTimeout time.Duration // cap on one http_request; default 2m
	MaxFrame       int           // default DefaultMaxFrame (4 MiB)

	// Before authentication (preauth.go).
	PreAuthMaxFrame    int           // default DefaultPreAuthMaxFrame (64 KiB)
	HandshakeTimeout   time.Duration // to the first successful challenge_response; default 10s
	MaxUnauthConns     int           // unauthenticated connections in all; default 1024
	MaxUnauthPerSource int           // per source address; default 128

	MaxLeases  int         // live leases kept; default 65536
	Logger     *zap.Logger // default zap.NewNop()
	Registerer prometheus.Registerer
	Now        func() time.Time // default time.Now
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SessionTTL, time.Hour)
	def(&o.ChallengeTTL, time.Minute)
	def(&o.IdleTimeout, 5*time.Minute)
	def(&o.WriteTimeout, 30*time.Second)
	def(&o.RequestTimeout, 2*time.Minute)
	if o.MaxFrame <= 0 || o.MaxFrame > DefaultMaxFrame {
		o.MaxFrame = DefaultMaxFrame
	}
	def(&o.HandshakeTimeout, 10*time.Second)
	if o.PreAuthMaxFrame <= 0 || o.PreAuthMaxFrame > o.MaxFrame {
		o.PreAuthMaxFrame = min(DefaultPreAuthMaxFrame, o.MaxFrame)
	}
	if o.MaxUnauthConns <= 0 {
		o.MaxUnauthConns = DefaultMaxUnauthConns
	}
	if o.MaxUnauthPerSource <= 0 {
		o.MaxUnauthPerSource = DefaultMaxUnauthPerSource
	}
	if o.MaxLeases <= 0 {
		o.MaxLeases = 65536
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Server serves the SanctumAI protocol. It is safe for concurrent use.
type Server struct {
	b       Backend
	opts    Options
	log     *zap.Logger
	metrics *metrics
	leases  *leaseTable
	limits  *authLimits
	gate    *unauthGate  // unauthenticated connections (preauth.go)
	tracker AgentTracker // the backend, when it closes revoked agents' connections
}

// New returns a Server answering from b.
func New(b Backend, opts Options) *Server {
	opts = opts.withDefaults()
	tracker, _ := b.(AgentTracker)
	return &Server{
		tracker: tracker,
		b:       b,
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Registerer),
		leases:  newLeaseTable(opts.MaxLeases),
		limits:  newAuthLimits(),
		gate:    newUnauthGate(opts.MaxUnauthConns, opts.MaxUnauthPerSource),
	}
}

func (s *Server) now() time.Time { return s.opts.Now() }

// ServeConn serves one connection until the client closes it, it stays idle
// past the idle timeout, a frame is too large, or ctx is done. It closes c.
// The caller may already have peeked at the first byte, as long as c replays
// it.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	cs, dc := newConnState(), newDialectConn()
	if s.tracker != nil {
		cs.track = func(agent string) func() { return s.tracker.TrackAgent(agent, cancel) }
	}
	defer cs.untrackAll()
	cs.source = sourceOf(c)
	gate, evicted := s.gate.enter(cs.source, cancel)
	defer gate.leave()
	if evicted > 0 {
		s.log.Warn("rpc: unauthenticated connections evicted to make room", zap.String(fieldSource, cs.source), zap.Int(fieldEvicted, evicted))
		s.count("", "invalid", "PREAUTH_EVICTED")
	}
	handshakeEnd := time.Now().Add(s.opts.HandshakeTimeout)
	r := bufio.NewReader(c)
	for {
		authed := cs.authenticated
		deadline, limit := time.Now().Add(s.opts.IdleTimeout), s.opts.MaxFrame
		if !authed {
			deadline, limit = minTime(deadline, handshakeEnd), s.opts.PreAuthMaxFrame
		}
		if err := c.SetReadDeadline(deadline); err != nil {
			return
		}
		frame, id, err := readFrameOrID(r, limit)
		if errors.Is(err, ErrFrameTooLarge) {
			s.refuseOversize(c, id, authed, limit)
			return
		}
		if err != nil {
			if !authed && isTimeout(err) {
				s.log.Info("rpc: handshake deadline passed; connection closed", zap.String(fieldSource, cs.source))
				s.count("", "invalid", "HANDSHAKE_TIMEOUT")
			}
			return
		}
		resp := s.handleFrame(ctx, cs, dc, frame)
		if !authed && cs.authenticated {
			gate.leave()
		}
		if !s.write(c, resp) {
			return
		}
	}
}

// refuseOversize answers a frame over the limit with the request's id
// when it could be read, else closes without an answer (an answer with
// id null crashes SDKs that match answers by id).
func (s *Server) refuseOversize(c net.Conn, id json.RawMessage, authed bool, limit int) {
	s.count("", "invalid", CodeInvalidRequest)
	s.log.Warn("rpc: frame over the limit; connection closed", zap.Bool(fieldAuthenticated, authed), zap.Int(fieldLimit, limit))
	if id == nil {
		return
	}
	msg := "frame exceeds the 4 MiB limit"
	if !authed {
		msg = fmt.Sprintf("frame exceeds the %d KiB limit before authentication", limit>>10)
	}
	s.write(c, response{ID: id, Error: invalid(msg)})
	lingerClose(c)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// write sends resp; false means the connection is gone.
func (s *Server) write(c net.Conn, resp response) bool {
	if err := c.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout)); err != nil {
		return false
	}
	_, err := c.Write(encodeResponse(resp, s.opts.MaxFrame))
	return err == nil
}

// lingerClose half-closes c and drains what the client is still sending for
// a moment, so the answer already written is not lost to a reset.
func lingerClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// ServeListener accepts connections on l and serves each with ServeConn
// until ctx is done or Accept fails. It closes l, waits for the connections
// it started, and returns nil after ctx is done.
func (s *Server) ServeListener(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			l.Close()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("rpc accept on %s: %w", l.Addr(), err)
		}
		wg.Go(func() { s.ServeConn(ctx, c) })
	}
}

// ListenUnix listens on a Unix socket at path with mode 0600, replacing a
// stale socket file left by an earlier run (never a regular file).
func ListenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return l, nil
}
