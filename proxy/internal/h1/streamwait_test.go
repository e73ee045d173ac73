package h1

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// openStream GETs srv's /s with a lean client and returns the streamed
// body, and the cancel of its request's context; when the test ends the
// body is closed, the context cancelled and the client's connections
// closed.
func openStream(t *testing.T, srv *httptest.Server) (*clientBody, context.CancelFunc) {
	t.Helper()
	cl := clientFor(srv)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/s", nil)
	resp, err := cl.RoundTrip(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close(); cancel(); cl.CloseIdleConnections(true) })
	return resp.Body.(*clientBody), cancel
}

// waitResult runs WaitReadable on a goroutine and reports when it returns.
func waitResult(b *clientBody) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.WaitReadable() }()
	return ch
}

// WaitReadable on a real TLS stream: it blocks while the upstream is quiet
// (and lends the read buffer back meanwhile), returns once bytes arrive,
// returns at once for bytes crypto/tls holds decrypted (a large chunk and
// a small one in one record, the large one read), and returns when the
// request's context closes the connection under it.
func TestWaitReadable(t *testing.T) {
	next := make(chan string)
	srv, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		bw := bufio.NewWriterSize(w, 32<<10)
		for {
			select {
			case s := <-next:
				if s == "pair" { // two chunks, one TLS record
					_, _ = io.WriteString(bw, strings.Repeat("x", 12000))
					_ = bw.Flush()
					s = "small"
				}
				_, _ = io.WriteString(w, s)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	b, cancel := openStream(t, srv)
	quiet := func(ch <-chan error) {
		t.Helper()
		select {
		case err := <-ch:
			t.Fatalf("returned (%v) with nothing to read", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	ready := func(ch <-chan error) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(3 * time.Second):
			t.Fatal("still waiting with bytes to read")
		}
	}
	ch := waitResult(b)
	quiet(ch)
	next <- "data: 1\n\n"
	ready(ch)
	buf := make([]byte, 64)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "data: 1\n\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	next <- "pair"
	big := make([]byte, 12000)
	if _, err := io.ReadFull(b, big); err != nil {
		t.Fatal(err)
	}
	ready(waitResult(b)) // "small" is inside crypto/tls, not on the socket
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "small" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	ch = waitResult(b)
	quiet(ch)
	cancel() // closes the connection under the wait
	ready(ch)
	if _, err := b.Read(buf); err == nil {
		t.Fatal("read after the cancel succeeded")
	}
}

// TestStreamWakesKeepTheirGoroutine: the wakes of a waiting stream run
// on workers that keep their stacks, not on a new goroutine each (a
// stream wakes once per event, and a new goroutine grew its stack by
// copying at every one).
func TestStreamWakesKeepTheirGoroutine(t *testing.T) {
	next := make(chan struct{})
	srv, _ := tlsUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		for {
			select {
			case <-next:
				_, _ = io.WriteString(w, "data: x\n\n")
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	b, _ := openStream(t, srv)
	kinds := make(chan string, 1)
	seen := map[string]int{}
	buf := make([]byte, 64)
	const rounds = 20
	for round := range rounds {
		if !b.ArmReadable(func() { kinds <- goroutineKind() }) {
			t.Fatalf("round %d: not armed with nothing to read", round)
		}
		next <- struct{}{}
		select {
		case k := <-kinds:
			seen[k]++
		case <-time.After(3 * time.Second):
			t.Fatalf("round %d: the wait never woke", round)
		}
		if n, err := b.Read(buf); err != nil || string(buf[:n]) != "data: x\n\n" {
			t.Fatalf("round %d: read %q, %v", round, buf[:n], err)
		}
	}
	if seen["worker"] < rounds-1 { // one may find every worker busy
		t.Fatalf("of %d wakes, %d ran on a worker (%v): a new goroutine for every wake", rounds, seen["worker"], seen)
	}
}

// goroutineKind says whether the calling goroutine is a worker of a
// deep.Pool (it keeps its stack from job to job) or "other".
func goroutineKind() string {
	b := make([]byte, 64<<10)
	if strings.Contains(string(b[:runtime.Stack(b, false)]), "deep.(*Pool).work") {
		return "worker"
	}
	return "other"
}

// ownGoroutines is the goroutine count less the idle workers of the
// wake pools, which stay for a while after their last job by design.
func ownGoroutines() int {
	return runtime.NumGoroutine() - connResumes.Workers() - streamWakes.Workers()
}
