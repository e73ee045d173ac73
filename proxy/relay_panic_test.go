package proxy

import (
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/proxy/door"
)

// panicBody is an observer's body that panics on the first Read after a
// read that returned bytes: after the stream's first event, once the
// relay has waited detached, so the panic runs on the poller's goroutine,
// where nothing above the relay would recover it. It passes the waits
// through, so the relay still waits detached.
type panicBody struct {
	io.ReadCloser
	src   parkable
	reads atomic.Int32
}

func (b *panicBody) Read(p []byte) (int, error) {
	if b.reads.Load() > 0 {
		panic("observer bug")
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.reads.Add(1)
	}
	return n, err
}

func (b *panicBody) WaitReadable() error           { return b.src.wait() }
func (b *panicBody) ArmReadable(ready func()) bool { return b.src.arm(ready) }

// A stream whose relay panics while it waits detached (a bug in an
// observer or the meter, reached by what an upstream sends) ends that
// stream alone: the panic is logged, the request recorded, and airlock
// goes on serving. Without the relay's recover the panic would kill the
// process, and this test binary with it.
func TestDetachedRelayPanicContained(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sse" {
			_, _ = io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(200 * time.Millisecond) // the relay waits detached
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(up.Close)
	var bodies atomic.Int32
	observe := func(resp *http.Response, _ *door.Decision) error {
		if resp.Header.Get("Content-Type") == "text/event-stream" {
			src := parkableSource(resp.Body)
			if src.arm == nil {
				return fmt.Errorf("the upstream body cannot wait detached: the test would not reach the detached relay")
			}
			resp.Body = &panicBody{ReadCloser: resp.Body, src: src}
			bodies.Add(1)
		}
		return nil
	}
	logs := &lockedBuffer{}
	aw := NewAsyncWriter(logs, 0)
	t.Cleanup(func() { _ = aw.Close() })
	host := strings.TrimPrefix(up.URL, "https://")
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	s, l, ca := inprocServer(t, "bench/key", inprocSecret, "tok", fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n"+
		"  - name: up\n    host: %q\n    credential: bench/key\n", host),
		Config{Log: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), aw, zapcore.DebugLevel)),
			UpstreamRoots: upRoots, Observers: []Observer{observe}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	e := &innerEnv{inproc: &inproc{s: s, addr: l.Addr().String(), roots: roots, upHost: host}, logs: logs}

	_, _, resp := getSSE(t, e) // the first event arrived
	rest, _ := io.ReadAll(resp.Body)
	if strings.Contains(string(rest), "two") {
		t.Fatalf("the event read by the panicking Read was relayed: %q", rest)
	}
	if bodies.Load() != 1 {
		t.Fatalf("%d streams observed, want 1", bodies.Load())
	}
	waitFor(t, func() bool {
		return strings.Contains(logs.String(), "panic relaying a stream") && strings.Contains(logs.String(), `"path":"/sse"`)
	})
	tc, br := e.tunnel(t) // airlock still serves
	_, _ = io.WriteString(tc, e.head("GET", "/plain"))
	resp2, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	if b, _ := io.ReadAll(resp2.Body); string(b) != "plain" {
		t.Fatalf("after the panic: %q", b)
	}
}
