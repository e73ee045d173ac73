package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Send's timeout, kept by the connection's own timer: a head that never
// comes and a body that stops are cut with ErrTimeout; a slow body whose
// every gap is shorter than the timeout is whole; a connection whose
// exchange ended in time is pooled, reused, and still expires when idle.
func TestClientSendTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, conns := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stall-head":
		case "/stall-body":
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		case "/slow-body": // 12 gaps of 40 ms: 480 ms in all, over the 300 ms timeout
			w.Header().Set("Content-Length", "12")
			for i := 0; i < 12; i++ {
				time.Sleep(40 * time.Millisecond)
				_, _ = io.WriteString(w, "x")
				w.(http.Flusher).Flush()
			}
			return
		default:
			_, _ = io.WriteString(w, "ok")
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cl := clientFor(srv)
	cl.IdleTimeout = 1200 * time.Millisecond
	defer cl.CloseIdleConnections(true)
	const timeout = 300 * time.Millisecond
	send := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		return cl.Send(req, timeout)
	}

	start := time.Now()
	if resp, err := send("/stall-head"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("stalled head: resp %v, err %v; want ErrTimeout", resp, err)
	}
	if d := time.Since(start); d < timeout || d > 10*timeout {
		t.Fatalf("stalled head cut after %v, want about %v", d, timeout)
	}

	resp, err := send("/stall-body")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); !errors.Is(err, ErrTimeout) || string(b) != "12345" {
		t.Fatalf("stalled body: %q, %v; want 12345 then ErrTimeout", b, err)
	}

	t0 := time.Now()
	resp, err = send("/slow-body")
	if err != nil {
		t.Fatal(time.Since(t0), err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "xxxxxxxxxxxx" {
		t.Fatalf("slow body: %q, %v; want it whole", b, err)
	}
	_ = resp.Body.Close()
	before := conns.Load()
	for i := 0; i < 3; i++ { // reused: the timer, stopped in time, never closes it
		resp, err := send("/ok")
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("ok: %q", b)
		}
		_ = resp.Body.Close()
		time.Sleep(2 * timeout) // longer than the timeout, shorter than IdleTimeout
	}
	if n := conns.Load(); n != before {
		t.Fatalf("%d new connections for exchanges that ended in time, want 0", n-before)
	}
	time.Sleep(2 * cl.IdleTimeout)
	cl.mu.Lock()
	idle := cl.nidle
	cl.mu.Unlock()
	if idle != 0 {
		t.Fatalf("%d idle connections after IdleTimeout, want 0", idle)
	}
}

// A dial that does not finish is cut by the timeout too.
func TestClientSendDialTimeout(t *testing.T) {
	cl := &Client{Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	req, _ := http.NewRequest("GET", "https://127.0.0.1:1/", nil)
	if _, err := cl.Send(req, 50*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("stalled dial: %v, want ErrTimeout", err)
	}
}

// Once the timeout has closed the connection, an end of the body read
// after it is not the upstream's word that the response is whole: an
// upstream whose handler is cancelled by that close may end its chunked
// body cleanly, and the relay must not pass a cut stream on as complete.
// Here the whole body waits in the read buffer while the timeout fires
// (the reader stalled); the read that reaches its end reports the timeout.
func TestClientEndAfterTimeoutIsCut(t *testing.T) {
	srv, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "whole")
		w.(http.Flusher).Flush() // chunked: the end follows at once
	})
	cl := clientFor(srv)
	defer cl.CloseIdleConnections(true)
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	resp, err := cl.Send(req, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the timeout fires: the connection is closed
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("body read after the timeout closed the connection: %q, %v; want ErrTimeout", b, err)
	}
}
