package proxy

import (
	"net"
	"net/http"
	"sync"
)

// serveInnerNetHTTP serves a MITM'd connection with net/http.Server
// instead of the lean loop (Config.InnerNetHTTP): the reference the lean
// loop is measured against (cmd/airlock-bench --inner-net-http). It keeps
// the front door's limits; Shutdown does not track these connections.
// Differences the lean loop's suite shows (TestInnerSuiteOnNetHTTP): an
// HTTP/1.0 request is answered HTTP/1.0, and a CONNECT inside the tunnel
// reaches the pipeline (421) instead of being refused as a bad head (400).
func (s *Server) serveInnerNetHTTP(c net.Conn, t *tunnel) {
	// t.ctx stays nil: each upstream request derives from net/http's
	// request context, cancelled when the agent goes.
	l := &oneConnListener{c: c, done: make(chan struct{})}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.servePipeline(w, r, t) }),
		ReadHeaderTimeout: s.front.ReadHeaderTimeout,
		IdleTimeout:       s.front.IdleTimeout,
		MaxHeaderBytes:    s.front.MaxHeaderBytes,
		ErrorLog:          s.front.ErrorLog,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				l.close()
			}
		},
	}
	_ = srv.Serve(l)
}

// oneConnListener hands out one connection, then blocks until it closes.
type oneConnListener struct {
	c     net.Conn
	once  sync.Once
	mu    sync.Mutex // guards given
	given bool
	done  chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if !l.given {
		l.given = true
		l.mu.Unlock()
		return l.c, nil
	}
	l.mu.Unlock()
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) close()         { l.once.Do(func() { close(l.done) }) }
func (l *oneConnListener) Close() error   { l.close(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
