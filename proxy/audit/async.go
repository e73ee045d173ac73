package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultQueue is the number of log lines an [AsyncWriter] holds before
// it drops.
const DefaultQueue = 8192

// errWriterClosed is returned by Sync when the writer goroutine is gone.
var errWriterClosed = errors.New("async log writer closed")

// AsyncWriter is a zapcore.WriteSyncer that takes log lines off the request
// path: Write copies the line into a bounded queue and returns at once; one
// goroutine writes the lines through a buffer in batches, flushed at most
// logBatchDelay after the first line of a batch. When the queue is full the
// line is dropped and counted, so a slow log sink (a blocked terminal, a
// full pipe) never stalls a request.
// Sync waits for the lines queued so far; Close drains the queue, flushes
// and stops the goroutine. Writes after Close go straight to the sink.
type AsyncWriter struct {
	out   io.Writer
	queue chan *[]byte // pooled copies (linePool)
	syncs chan chan error
	stop  chan struct{}
	done  chan struct{}

	dropped atomic.Uint64
	onDrop  atomic.Pointer[func()]

	mu     sync.RWMutex // guards closed; held for reading while enqueueing
	closed bool
	direct sync.Mutex // serialises writes to out after Close

	w   *bufio.Writer // owned by the writer goroutine
	err error         // first write error; owned by the writer goroutine
}

// NewAsyncWriter starts the writer goroutine for out. queue <= 0 means
// [DefaultQueue]. If out has a Sync() error method, Sync and Close call
// it after flushing.
func NewAsyncWriter(out io.Writer, queue int) *AsyncWriter {
	if queue <= 0 {
		queue = DefaultQueue
	}
	a := &AsyncWriter{
		out:   out,
		queue: make(chan *[]byte, queue),
		syncs: make(chan chan error),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		w:     bufio.NewWriterSize(out, 64<<10),
	}
	go a.run()
	return a
}

// OnDrop installs fn, called once per dropped line (e.g. a metric's Inc).
func (a *AsyncWriter) OnDrop(fn func()) { a.onDrop.Store(&fn) }

// Dropped is the number of lines dropped so far.
func (a *AsyncWriter) Dropped() uint64 { return a.dropped.Load() }

// Write queues a copy of p (zap reuses its buffer) and never blocks. It
// reports success even when the line is dropped: a logger has nobody to
// return the error to, and the drop is counted.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		a.direct.Lock()
		defer a.direct.Unlock()
		return a.out.Write(p)
	}
	line := linePool.Get().(*[]byte)
	*line = append((*line)[:0], p...)
	select {
	case a.queue <- line:
	default:
		putLine(line)
		a.countDrop()
	}
	a.mu.RUnlock()
	return len(p), nil
}

// Sync waits until every line queued before the call is written and
// flushed, then syncs the sink when it can.
func (a *AsyncWriter) Sync() error {
	a.mu.RLock()
	closed := a.closed
	a.mu.RUnlock()
	if closed {
		return syncOut(a.out)
	}
	reply := make(chan error, 1)
	select {
	case a.syncs <- reply:
		return <-reply
	case <-a.done:
		return errWriterClosed
	}
}

// Close writes the queued lines, flushes, syncs the sink and stops the
// writer goroutine. It returns the first write error seen, if any.
func (a *AsyncWriter) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.stop)
	}
	a.mu.Unlock()
	<-a.done
	return a.err
}

// logBatchDelay is how long the writer goroutine gathers lines after the
// first one before writing them together: under load a line costs neither
// a goroutine wake-up nor a write(2) of its own; idle, nothing ticks.
const logBatchDelay = 5 * time.Millisecond

// run is the writer goroutine: woken by the first line after a quiet
// spell, it waits logBatchDelay (senders do not wake it meanwhile), then
// drains the queue and flushes.
func (a *AsyncWriter) run() {
	defer close(a.done)
	batch := time.NewTimer(logBatchDelay)
	batch.Stop()
	for {
		select {
		case line := <-a.queue:
			a.write(line)
			batch.Reset(logBatchDelay)
			select {
			case <-batch.C:
			case <-a.stop:
			case reply := <-a.syncs:
				a.drain()
				reply <- a.syncErr()
			}
			batch.Stop()
			a.drain()
		case reply := <-a.syncs:
			a.drain()
			reply <- a.syncErr()
		case <-a.stop:
			a.drain() // Close holds no reader lock now: nothing more is queued
			if err := a.syncErr(); err != nil && a.err == nil {
				a.err = err
			}
			return
		}
	}
}

func (a *AsyncWriter) countDrop() {
	a.dropped.Add(1)
	if fn := a.onDrop.Load(); fn != nil {
		(*fn)()
	}
}

func (a *AsyncWriter) drain() {
	for {
		select {
		case line := <-a.queue:
			a.write(line)
		default:
			a.flush()
			return
		}
	}
}

// linePool recycles the copies of log lines; lines longer than
// maxPooledLine are left to the collector.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledLine = 16 << 10

func putLine(line *[]byte) {
	if cap(*line) <= maxPooledLine {
		linePool.Put(line)
	}
}

func (a *AsyncWriter) write(line *[]byte) {
	defer putLine(line)
	if _, err := a.w.Write(*line); err != nil {
		a.fail(fmt.Errorf("write log: %w", err))
	}
}

func (a *AsyncWriter) flush() {
	if err := a.w.Flush(); err != nil {
		a.fail(fmt.Errorf("flush log: %w", err))
	}
}

// fail counts the lost line and remembers the first error. A failed
// bufio.Writer keeps failing, so it is reset to try again with the next line.
func (a *AsyncWriter) fail(err error) {
	a.countDrop()
	if a.err == nil {
		a.err = err
	}
	a.w.Reset(a.out)
}

func (a *AsyncWriter) syncErr() error {
	if err := syncOut(a.out); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	return nil
}

// syncOut syncs w when it is a file or another syncer. Syncing a terminal
// or a pipe fails with EINVAL; that is not an error worth reporting.
func syncOut(w io.Writer) error {
	s, ok := w.(interface{ Sync() error })
	if !ok {
		return nil
	}
	if err := s.Sync(); err != nil && !isSyncUnsupported(err) {
		return err
	}
	return nil
}

func isSyncUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOTTY)
}
