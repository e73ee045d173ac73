package audit

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// gatedSink blocks every Write until open is closed, and says when the
// first Write has started.
type gatedSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	open    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func newGatedSink() *gatedSink {
	return &gatedSink{open: make(chan struct{}), entered: make(chan struct{})}
}

func (g *gatedSink) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedSink) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func TestAsyncWriterDropsWhenFull(t *testing.T) {
	sink := newGatedSink()
	a := NewAsyncWriter(sink, 2)
	var counted atomic.Int64
	a.OnDrop(func() { counted.Add(1) })
	mustWrite(t, a, "line 1\n")
	<-sink.entered // the writer goroutine is stuck in the sink now
	start := time.Now()
	for i := 2; i <= 5; i++ {
		mustWrite(t, a, "line "+strconv.Itoa(i)+"\n")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("writes to a full queue blocked for %v", d)
	}
	if a.Dropped() != 2 || counted.Load() != 2 {
		t.Fatalf("dropped %d, counted %d; want 2 and 2", a.Dropped(), counted.Load())
	}
	close(sink.open)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := sink.String(), "line 1\nline 2\nline 3\n"; got != want {
		t.Fatalf("sink got %q, want %q", got, want)
	}
}

func mustWrite(t *testing.T, a *AsyncWriter, s string) {
	t.Helper()
	if n, err := a.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func TestAsyncWriterSyncAndClose(t *testing.T) {
	cases := map[string]struct {
		finish func(a *AsyncWriter) error
	}{
		"sync":  {finish: func(a *AsyncWriter) error { return a.Sync() }},
		"close": {finish: func(a *AsyncWriter) error { return a.Close() }},
		"close twice": {finish: func(a *AsyncWriter) error {
			if err := a.Close(); err != nil {
				return err
			}
			return a.Close()
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var buf lockedBuffer
			a := NewAsyncWriter(&buf, 0)
			defer a.Close()
			buf2 := make([]byte, 0, 8)
			buf2 = append(buf2, "abc\n"...)
			mustWrite(t, a, string(buf2))
			copy(buf2, "xyz\n") // the writer must have copied the line
			if err := tc.finish(a); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != "abc\n" {
				t.Fatalf("after finish sink holds %q, want %q", got, "abc\n")
			}
		})
	}
}

func TestAsyncWriterAfterClose(t *testing.T) {
	var buf lockedBuffer
	a := NewAsyncWriter(&buf, 0)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, "late\n")
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "late\n" {
		t.Fatalf("sink holds %q, want the late line written directly", got)
	}
}

type failingSink struct{}

var errSinkBroken = errors.New("sink broken")

func (failingSink) Write([]byte) (int, error) { return 0, errSinkBroken }

func TestAsyncWriterReportsSinkErrors(t *testing.T) {
	a := NewAsyncWriter(failingSink{}, 0)
	mustWrite(t, a, "lost\n")
	err := a.Close()
	if !errors.Is(err, errSinkBroken) {
		t.Fatalf("Close = %v, want the sink's error", err)
	}
	if a.Dropped() == 0 {
		t.Fatal("a line lost to a sink error was not counted as dropped")
	}
}

func TestAsyncWriterZapConcurrent(t *testing.T) {
	var buf lockedBuffer
	a := NewAsyncWriter(&buf, 1<<14)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, a, zapcore.InfoLevel))
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				log.Info("request", zap.Int("worker", w), zap.Int("i", i))
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(buf.String(), "\n")
	if uint64(lines)+a.Dropped() != workers*each {
		t.Fatalf("%d lines written + %d dropped, want %d", lines, a.Dropped(), workers*each)
	}
	if lines == 0 {
		t.Fatal("nothing written")
	}
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAsyncWriterCountsEveryLineOfAFailedBatch checks that a batch lost to
// a sink error counts each of its lines as dropped, not one per batch.
func TestAsyncWriterCountsEveryLineOfAFailedBatch(t *testing.T) {
	a := NewAsyncWriter(failingSink{}, 0)
	for i := range 5 {
		mustWrite(t, a, "lost "+strconv.Itoa(i)+"\n")
	}
	if err := a.Close(); !errors.Is(err, errSinkBroken) {
		t.Fatalf("Close = %v, want the sink's error", err)
	}
	if got := a.Dropped(); got != 5 {
		t.Fatalf("dropped %d lines, want 5", got)
	}
}

// TestAsyncWriterBatchesWholeLines checks that lines written between two
// batches all arrive, each whole and in order, after Sync.
func TestAsyncWriterBatchesWholeLines(t *testing.T) {
	var buf lockedBuffer
	a := NewAsyncWriter(&buf, 0)
	defer a.Close()
	var want strings.Builder
	for i := range 1000 {
		l := "line " + strconv.Itoa(i) + "\n"
		want.WriteString(l)
		mustWrite(t, a, l)
		if i == 500 {
			if err := a.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != want.String() {
		t.Fatalf("sink holds %d bytes, want %d in order", len(got), want.Len())
	}
}
