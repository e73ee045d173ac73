package proxy

import (
	"bufio"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Streams wait for the upstream holding no buffer (copyParked): these
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

// A stream from the lean upstream client waits in copyParked (holding no
// buffer), not in a Read: a wrapper added between the relay and the
// client's body that parkableSource cannot see through would silently
// bring back the buffers held per waiting stream.
func TestStreamWaitsParked(t *testing.T) {
	release := make(chan struct{})
	defer close(release) // before the cleanups: the upstream handler ends first
	e := startInner(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select { // quiet until the test ends
		case <-release:
		case <-r.Context().Done():
		}
	})
	tc, br := e.tunnel(t)
	_, _ = io.WriteString(tc, e.head("GET", "/sse"))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, resp.Body, "data: one\n\n", 3*time.Second)
	var stacks string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var sb strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
		if stacks = sb.String(); strings.Contains(stacks, "(*clientBody).WaitReadable") {
			return
		}
	}
	t.Fatalf("no goroutine waits in WaitReadable while the stream is quiet:\n%s", stacks)
}
