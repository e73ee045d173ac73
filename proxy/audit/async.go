package audit

import (
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
// path: Write appends the line to a bounded pending batch and returns at
// once; one goroutine writes the batch to the sink in one write, at most
// logBatchDelay after the first line of a batch. When the batch is full
// the line is dropped and counted, so a slow log sink (a blocked terminal,
// a full pipe) never stalls a request.
// Sync waits for the lines written so far; Close drains the batch and
// stops the goroutine. Writes after Close go straight to the sink.
type AsyncWriter struct {
	out   io.Writer
	max   int           // lines a pending batch holds before drops
	wake  chan struct{} // one token: the batch got its first line
	syncs chan chan error
	stop  chan struct{}
	done  chan struct{}

	dropped atomic.Uint64
	onDrop  atomic.Pointer[func()]

	mu     sync.Mutex // guards pend, lines and closed
	pend   []byte     // the pending batch: whole lines, copied (zap reuses its buffer)
	lines  int        // lines in pend
	closed bool
	direct sync.Mutex // serialises writes to out after Close

	spare []byte // the batch being written, swapped with pend; owned by the writer goroutine
	err   error  // first write error; owned by the writer goroutine
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
		max:   queue,
		wake:  make(chan struct{}, 1),
		syncs: make(chan chan error),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go a.run()
	return a
}

// OnDrop installs fn, called once per dropped line (e.g. a metric's Inc).
func (a *AsyncWriter) OnDrop(fn func()) { a.onDrop.Store(&fn) }

// Dropped is the number of lines dropped so far.
func (a *AsyncWriter) Dropped() uint64 { return a.dropped.Load() }

// Write adds a copy of p (zap reuses its buffer) to the pending batch and
// never blocks on the sink. It reports success even when the line is
// dropped: a logger has nobody to return the error to, and the drop is
// counted.
func (a *AsyncWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.direct.Lock()
		defer a.direct.Unlock()
		return a.out.Write(p)
	}
	if a.lines >= a.max {
		a.mu.Unlock()
		a.countDrop()
		return len(p), nil
	}
	first := a.lines == 0
	a.pend = append(a.pend, p...)
	a.lines++
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default: // a token is already there
		}
	}
	return len(p), nil
}

// Sync waits until every line written before the call is written to the
// sink, then syncs the sink when it can.
func (a *AsyncWriter) Sync() error {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
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

// Close writes the pending lines, syncs the sink and stops the writer
// goroutine. It returns the first write error seen, if any.
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
// spell, it waits logBatchDelay (writers do not wake it meanwhile), then
// writes the batch.
func (a *AsyncWriter) run() {
	defer close(a.done)
	batch := time.NewTimer(logBatchDelay)
	batch.Stop()
	for {
		select {
		case <-a.wake:
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
			a.drain() // Close holds the lock no more: nothing more is added
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

// maxSpare is the largest batch array the writer keeps for the next batch
// (a full batch of DefaultQueue lines of ~500 bytes).
const maxSpare = 4 << 20

// drain takes the pending batch and writes it to the sink in one write.
func (a *AsyncWriter) drain() {
	a.mu.Lock()
	b, n := a.pend, a.lines
	a.pend, a.lines = a.spare[:0], 0
	a.mu.Unlock()
	if n > 0 {
		if _, err := a.out.Write(b); err != nil {
			a.fail(fmt.Errorf("write log: %w", err), n)
		}
	}
	if cap(b) > maxSpare {
		b = nil
	}
	a.spare = b[:0]
}

// fail counts the n lost lines and remembers the first error.
func (a *AsyncWriter) fail(err error, n int) {
	for range n {
		a.countDrop()
	}
	if a.err == nil {
		a.err = err
	}
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
