// Package audit records what airlock decided: the hash-chained audit file
// (`serve --audit-log`), its verifier, and the asynchronous writer that
// keeps log lines off the request path.
//
// # The file
//
// One JSON [Line] per decision, each with an HMAC over the line and the
// previous line's MAC ([Open], [Verify]).
package audit

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The audit file (`airlock serve --audit-log FILE`) holds one JSON object
// per line. Each line ends with "mac", the hex HMAC-SHA256 (keyed with the
// vault's audit.hmac secret) of the line up to that field, and carries in
// "prev" the mac of the line before it, and a sequence number "seq". An
// edited line fails its own mac; a removed or reordered line breaks the
// link of the line after it. Rotation renames the file and the chain goes on
// in the new one: its first line carries the last mac of the old file.
// Truncating the end of the newest file is not detectable from the file
// alone; ship the lines off the machine for that.

// Line is one line of the audit file (the "mac" field is added last).
type Line struct {
	Seq        uint64  `json:"seq"`
	Time       string  `json:"time"`
	Agent      string  `json:"agent"`
	Rule       string  `json:"rule"`
	Decision   string  `json:"decision"`
	Credential string  `json:"credential,omitempty"`
	Inject     string  `json:"inject,omitempty"`
	Method     string  `json:"method"`
	Host       string  `json:"host"`
	Path       string  `json:"path,omitempty"`
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
	DurationMS float64 `json:"duration_ms"`
	Code       string  `json:"code"`
	Door       string  `json:"door"`
	Operation  string  `json:"operation,omitempty"` // "" for a proxied request
	Approver   string  `json:"approver,omitempty"`  // who decided an approval (approval_* decisions)
	Replica    string  `json:"replica,omitempty"`   // fleet mode: the replica whose chain this is
	Prev       string  `json:"prev"`

	// At is Time unformatted, for in-process readers of lines (the
	// console's feed) so they need not parse Time back; not written.
	At time.Time `json:"-"`
}

// Options configure an audit file.
type Options struct {
	Path    string
	Key     []byte      // HMAC key; at least 16 bytes
	MaxSize int64       // rotate when the file would grow past this; 0: never
	Queue   int         // lines buffered before dropping; default 8192
	Log     *zap.Logger // write failures; nil: discarded
	// Replica names this file's chain in a fleet (`serve --state`): every
	// line carries it, and `audit verify` checks each replica's files as
	// their own chain.
	Replica string
}

// Log appends hash-chained audit lines to a file from one goroutine,
// off the requests' path: lines wait in a bounded queue and are dropped
// (counted) when it is full.
type Log struct {
	opts  Options
	queue chan Line
	stop  chan struct{}
	done  chan struct{}

	dropped atomic.Int64
	onDrop  func() // set by OnDrop before serving

	// Owned by the writer goroutine (and Open before it starts).
	f    *os.File
	w    *bufio.Writer
	size int64
	seq  uint64
	prev string
	err  error // first write error, reported by Close
}

// ErrKey is returned when the HMAC key is missing or too short.
var ErrKey = errors.New("audit HMAC key missing or shorter than 16 bytes")

// Open opens (or creates, mode 0600) the audit file and continues
// the chain of its last line.
func Open(o Options) (*Log, error) {
	if len(o.Key) < 16 {
		return nil, ErrKey
	}
	if o.Queue <= 0 {
		o.Queue = 8192
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	a := &Log{opts: o, queue: make(chan Line, o.Queue), stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.open(); err != nil {
		return nil, err
	}
	go a.run()
	return a, nil
}

// open opens the file for appending and reads the chain state from its
// last line. A damaged last line (a crash mid-write) starts a new chain;
// verify reports the damage.
func (a *Log) open() error {
	f, err := os.OpenFile(a.opts.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("open audit log: %w", err)
	}
	a.f, a.w, a.size = f, bufio.NewWriterSize(f, 64<<10), fi.Size()
	last, complete, err := lastLine(f, fi.Size())
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("read audit log %s: %w", a.opts.Path, err)
	}
	if !complete {
		_, _ = a.w.WriteString("\n")
		a.size++
	}
	if fi.Size() == 0 {
		last = a.lastRotatedLine()
	}
	if seq, mac, ok := parseTail(last); ok {
		a.seq, a.prev = seq, mac
	} else if len(last) > 0 {
		a.opts.Log.Warn("audit log: last line is damaged, starting a new chain", zap.String("file", a.opts.Path))
	}
	return nil
}

// lastRotatedLine is the last line of the newest rotated file, so a
// restart right after a rotation keeps the chain.
func (a *Log) lastRotatedLine() []byte {
	names, _ := filepath.Glob(a.opts.Path + ".*")
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	f, err := os.Open(names[len(names)-1])
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	last, _, _ := lastLine(f, fi.Size())
	return last
}

// lastLine returns the last line of f (without its newline) and whether
// the file ends with a newline.
func lastLine(f *os.File, size int64) ([]byte, bool, error) {
	if size == 0 {
		return nil, true, nil
	}
	n := min(size, 64<<10)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	complete := buf[n-1] == '\n'
	if complete {
		buf = buf[:n-1]
	}
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			return buf[i+1:], complete, nil
		}
	}
	return buf, complete, nil
}

func parseTail(line []byte) (seq uint64, mac string, ok bool) {
	var t struct {
		Seq uint64 `json:"seq"`
		MAC string `json:"mac"`
	}
	if json.Unmarshal(line, &t) != nil || len(t.MAC) != 64 {
		return 0, "", false
	}
	return t.Seq, t.MAC, true
}

// Write queues one line; it never blocks.
func (a *Log) Write(l Line) {
	select {
	case a.queue <- l:
	default:
		a.drop()
	}
}

func (a *Log) drop() {
	a.dropped.Add(1)
	if a.onDrop != nil {
		a.onDrop()
	}
}

// Dropped is the number of lines lost so far.
func (a *Log) Dropped() int64 { return a.dropped.Load() }

// Path is the file written to.
func (a *Log) Path() string { return a.opts.Path }

// Close writes the queued lines, flushes and closes the file.
func (a *Log) Close() error {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
	return a.err
}

// run is the writer goroutine: it batches lines and flushes whenever the
// queue runs empty.
func (a *Log) run() {
	defer close(a.done)
	for {
		select {
		case l := <-a.queue:
			a.append(l)
			if len(a.queue) == 0 {
				a.flush()
			}
		case <-a.stop:
			for {
				select {
				case l := <-a.queue:
					a.append(l)
				default:
					a.flush()
					if err := a.f.Close(); err != nil && a.err == nil {
						a.err = fmt.Errorf("close audit log: %w", err)
					}
					return
				}
			}
		}
	}
}

// append seals l into the chain and writes it, rotating first when the
// file would pass MaxSize.
func (a *Log) append(l Line) {
	l.Seq, l.Prev = a.seq+1, a.prev
	if a.opts.Replica != "" {
		l.Replica = a.opts.Replica
	}
	line, mac, err := sealLine(a.opts.Key, l)
	if err != nil {
		a.fail(err)
		return
	}
	if a.opts.MaxSize > 0 && a.size > 0 && a.size+int64(len(line)) > a.opts.MaxSize {
		if err := a.rotate(); err != nil {
			a.fail(err)
			return
		}
	}
	if _, err := a.w.Write(line); err != nil {
		a.fail(fmt.Errorf("write audit log: %w", err))
		return
	}
	a.size += int64(len(line))
	a.seq, a.prev = l.Seq, mac
}

func (a *Log) flush() {
	if err := a.w.Flush(); err != nil {
		a.fail(fmt.Errorf("flush audit log: %w", err))
	}
}

func (a *Log) fail(err error) {
	a.drop()
	if a.err == nil {
		a.err = err
		a.opts.Log.Error("audit log write failed; lines are being dropped", zap.String("file", a.opts.Path), zap.String("error", err.Error()))
	}
}

// rotate renames the full file to FILE.<UTC time> and starts a new one.
// Names sort in rotation order, so `airlock audit verify FILE.* FILE`
// checks the whole chain.
func (a *Log) rotate() error {
	if err := a.w.Flush(); err != nil {
		return fmt.Errorf("flush audit log: %w", err)
	}
	if err := a.f.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	rotated := a.opts.Path + "." + stamp
	for i := 1; fileExists(rotated); i++ {
		rotated = a.opts.Path + "." + stamp + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(a.opts.Path, rotated); err != nil {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	f, err := os.OpenFile(a.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	a.f, a.size = f, 0
	a.w.Reset(f)
	return nil
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// sealLine renders l as a line ending in its mac, and returns the mac.
func sealLine(key []byte, l Line) ([]byte, string, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return nil, "", fmt.Errorf("encode audit line: %w", err)
	}
	body = body[:len(body)-1] // drop "}"
	mac := lineMAC(key, body)
	line := make([]byte, 0, len(body)+len(mac)+10)
	line = append(line, body...)
	line = append(line, `,"mac":"`...)
	line = append(line, mac...)
	line = append(line, "\"}\n"...)
	return line, mac, nil
}

func lineMAC(key, body []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// OnDrop sets the function called for each line dropped because the queue
// was full. Call it before the first Write.
func (a *Log) OnDrop(fn func()) { a.onDrop = fn }
