package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock/airlock/proxy/internal/h1"
	"github.com/airlock/airlock/proxy/internal/park"
)

// Streams wait for the upstream holding no buffer (stream.go): these
// tests play the upstream that tries to slip something past the wait.

// readUntil reads an SSE body until want has arrived or the deadline,
// and returns what it read.
func readUntil(t *testing.T, body io.Reader, want string, within time.Duration) string {
	t.Helper()
	type res struct {
		got string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var sb strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := body.Read(buf)
			sb.Write(buf[:n])
			if strings.Contains(sb.String(), want) || err != nil {
				ch <- res{sb.String(), err}
				return
			}
		}
	}()
	select {
	case r := <-ch:
		if !strings.Contains(r.got, want) {
			t.Fatalf("stream ended (%v) before %q: %.300q", r.err, want, r.got)
		}
		return r.got
	case <-time.After(within):
		t.Fatalf("%q not relayed within %s", want, within)
		return ""
	}
}

// A secret split across two upstream writes, with the stream parked
// between them (the scrubber holding the first half as its undecided
// tail), is still redacted, and nothing of it reaches the agent.
func TestParkedStreamRedactsSecretSplitAcrossWait(t *testing.T) {
	forms := map[string]string{
		"raw":    inprocSecret,
		"base64": base64.StdEncoding.EncodeToString([]byte(inprocSecret)),
		"query":  url.QueryEscape(inprocSecret),
	}
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		form := forms[r.URL.Query().Get("form")]
		at, _ := strconv.Atoi(r.URL.Query().Get("at"))
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: a"+form[:at])
		w.(http.Flusher).Flush()
		time.Sleep(150 * time.Millisecond) // the relay parks with the half as its tail
		_, _ = io.WriteString(w, form[at:]+"\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(w, "data: end\n\n")
	})
	for name, form := range forms {
		for _, at := range []int{1, len(form) / 2, len(form) - 1} {
			t.Run(name+"/"+strconv.Itoa(at), func(t *testing.T) {
				tc, br := e.tunnel(t)
				_, _ = io.WriteString(tc, e.head("GET", "/sse?form="+name+"&at="+strconv.Itoa(at)))
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				got := readUntil(t, resp.Body, "data: end\n\n", 5*time.Second)
				if want := "data: a[REDACTED:bench/key]\n\ndata: end\n\n"; got != want {
					t.Fatalf("relayed %q, want %q", got, want)
				}
			})
		}
	}
}

// An upstream that sends a large event and a small one in one TLS
// record, then goes quiet: after the large event's reads the small one
// sits decrypted inside crypto/tls (not in any read buffer, not on the
// socket). A relay that waited on the socket alone would hold it back
// until the upstream spoke again; it must arrive at once.
func TestParkedStreamRelaysBytesTLSHolds(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		w.Header().Set("Content-Type", "text/event-stream")
		bw := bufio.NewWriterSize(w, 16<<10) // both events in one write: one chunk, one TLS record
		_, _ = io.WriteString(bw, "data: "+strings.Repeat("x", size)+"\n\n")
		_ = bw.Flush()
		_, _ = io.WriteString(w, "data: two\n\n") // a second chunk, same record: Flush comes after
		w.(http.Flusher).Flush()
		select { // quiet until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	})
	for _, size := range []int{2000, 3000, 4090, 6000, 8190, 12000, 15000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			tc, br := e.tunnel(t)
			_, _ = io.WriteString(tc, e.head("GET", "/sse?size="+strconv.Itoa(size)))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			readUntil(t, resp.Body, "data: two\n\n", 3*time.Second)
		})
	}
}

// A quiet stream from the lean upstream client waits without a goroutine
// (stream.go): its upstream socket is in the shared poller and no
// goroutine is anywhere in the pipeline or the relay. The upstream's next
// event still reaches the agent, the stream's end finishes the response,
// and the connection carries the next request. A wrapper added between
// the relay and the client's body that parkableSource cannot see
// through, or a relay that waits on its goroutine again, fails this.
func TestStreamWaitsDetached(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	releaseOnce := func() { once.Do(func() { close(release) }) }
	defer releaseOnce() // before the cleanups: the upstream handler ends first
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sse" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select { // quiet until released
		case <-release:
			_, _ = io.WriteString(w, "data: two\n\n")
		case <-r.Context().Done():
		}
	})
	tc, br, resp := getSSE(t, e)
	var stacks string
	quiet := false
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
		stacks = sb.String()
		if park.Parked() > 0 && !strings.Contains(stacks, "proxy.(*Server).servePipeline") &&
			!strings.Contains(stacks, "proxy.(*detachedStream)") && !strings.Contains(stacks, "WaitReadable") {
			quiet = true
			break
		}
	}
	if !quiet {
		t.Fatalf("a quiet stream still holds a goroutine in the relay (parked %d):\n%s", park.Parked(), stacks)
	}
	releaseOnce()
	got := readUntil(t, resp.Body, "data: two\n\n", 3*time.Second)
	if rest, _ := io.ReadAll(resp.Body); strings.Contains(got+string(rest), "one\n\ndata: one") {
		t.Fatalf("an event relayed twice: %q", got+string(rest))
	}
	_, _ = io.WriteString(tc, e.head("GET", "/plain"))
	resp2, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the connection after a detached stream: %v", err)
	}
	if b, _ := io.ReadAll(resp2.Body); string(b) != "plain" {
		t.Fatalf("next request on the connection: %q", b)
	}
	waitFor(t, func() bool { // the detached stream recorded its request, with its bytes
		return strings.Contains(e.logs.String(), `"path":"/sse"`) && strings.Contains(e.logs.String(), `"path":"/plain"`)
	})
}

// getSSE opens a tunnel through e, asks for /sse and reads the stream up
// to its first event ("data: one").
func getSSE(t *testing.T, e *innerEnv) (*tls.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	tc, br := e.tunnel(t)
	_, _ = io.WriteString(tc, e.head("GET", "/sse"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, resp.Body, "data: one\n\n", 3*time.Second)
	return tc, br, resp
}

// openQuietStream opens an SSE stream whose upstream sends one event and
// then nothing; cut receives when the upstream request is cancelled.
func openQuietStream(t *testing.T) (*innerEnv, *tls.Conn, *http.Response, <-chan struct{}) {
	t.Helper()
	cut := make(chan struct{}, 1)
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			cut <- struct{}{}
		case <-time.After(30 * time.Second):
		}
	})
	tc, _, resp := getSSE(t, e)
	return e, tc, resp, cut
}

// An agent revoked while its stream waits detached (no goroutine; a
// close on this side is no event for the hang-up watch either) loses the
// stream at once: its connection is closed and the upstream request is
// cancelled, rather than both lingering until the upstream speaks again.
// Without Detach's close notice the upstream request is never cancelled.
func TestRevokeDetachedStreamCancelsUpstream(t *testing.T) {
	e, tc, resp, cut := openQuietStream(t)
	// Past where the hang-up watch used to end (h1.WatchDelay, then the 2 s head timeout).
	time.Sleep(h1.WatchDelay + 2*time.Second + 300*time.Millisecond)
	if park.Parked() == 0 {
		t.Fatal("the quiet stream is not waiting in the poller")
	}
	t0 := time.Now()
	e.s.revoke("bot", RevokeRekeyed)
	_ = tc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, resp.Body); err == nil || isTimeoutErr(err) {
		t.Fatalf("the revoked agent's stream after %v: %v, want it cut", time.Since(t0), err)
	}
	select {
	case <-cut:
		t.Logf("stream cut and upstream request cancelled %v after the revocation", time.Since(t0))
	case <-time.After(time.Second):
		t.Fatal("the upstream request of the revoked agent's detached stream was not cancelled")
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A detached stream whose upstream goes quiet past the rule's timeout is
// cut: the timeout closes the upstream connection, and the close must end
// the poller's wait first (a socket closed while registered leaves the
// poller without an event, and the stream would hang for ever). The agent
// sees the response cut (the connection ends) and the record says aborted.
func TestDetachedStreamUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	up.StartTLS()
	t.Cleanup(up.Close)
	logs := &lockedBuffer{}
	e := &innerEnv{inproc: startInprocRule(t, up, logs, "    timeout: 700ms\n"), logs: logs}
	tc, _, resp := getSSE(t, e)
	t0 := time.Now()
	_ = tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, resp.Body)
	if err == nil || isTimeoutErr(err) {
		t.Fatalf("stream quiet past its 700ms timeout, after %v: %v, want it cut", time.Since(t0), err)
	}
	t.Logf("cut %v after the last event", time.Since(t0))
	waitFor(t, func() bool { return strings.Contains(logs.String(), `"aborted":true`) })
}

// An agent that hangs up on a quiet stream is noticed at once, however
// long the stream has run, and the upstream request is cancelled; the
// watch for it waits in the poller, with no goroutine and no read buffer.
// A watch that reads on a goroutine of its own until the head timeout
// (as it did) fails both: a goroutine waits in it, and a hang-up
// after the timeout leaves the upstream streaming to nobody.
func TestAgentGoneLateInQuietStream(t *testing.T) {
	_, tc, _, cut := openQuietStream(t)
	time.Sleep(h1.WatchDelay + 300*time.Millisecond) // the watch has begun
	var sb strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
	if strings.Contains(sb.String(), "innerConn).startWatch") { // startWatch.func1, startWatcher.func1
		t.Fatalf("the hang-up watch of a quiet stream holds a goroutine:\n%s", sb.String())
	}
	time.Sleep(2*time.Second + 300*time.Millisecond) // past the 2 s head timeout
	t0 := time.Now()
	_ = tc.Close()
	select {
	case <-cut:
		t.Logf("upstream request cancelled %v after the agent hung up", time.Since(t0))
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream request goes on after the agent hung up")
	}
}
