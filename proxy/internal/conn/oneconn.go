package conn

import (
	"net"
	"net/http"
	"sync"
)

// ServeOne serves c with srv (its Handler and limits) until c closes.
// srv's ConnState is replaced.
func ServeOne(srv *http.Server, c net.Conn) {
	l := &oneConnListener{c: c, done: make(chan struct{})}
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			l.close()
		}
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

// Accept hands out the connection once, then blocks until it closes.
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
