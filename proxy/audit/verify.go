package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// ErrChain is wrapped by the [ChainError] of a failed verification.
var ErrChain = errors.New("audit chain broken")

// ChainError names the first line of an audit file that fails
// verification (lines count from 1 in each file).
type ChainError struct {
	File   string
	Line   int
	Reason string
}

func (e *ChainError) Error() string { return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Reason }

func (e *ChainError) Unwrap() error { return ErrChain }

// maxAuditLine bounds one line read by Verify.
const maxAuditLine = 1 << 20

// Verify checks files as one chain, in the order given (rotated files
// first: `FILE.* FILE`), and returns the number of lines verified. The first
// line given may continue a chain from an earlier file not given; every
// later line must carry the mac of the line before it. A failure is a
// *ChainError for the first broken line.
func Verify(key []byte, files ...string) (int, error) {
	if len(key) < 16 {
		return 0, ErrKey
	}
	v := &chainVerifier{key: key}
	for _, name := range files {
		if err := v.file(name); err != nil {
			return v.lines, err
		}
	}
	return v.lines, nil
}

// chainVerifier walks lines in order, remembering the last mac and seq.
type chainVerifier struct {
	key     []byte
	started bool
	seq     uint64
	prev    string
	lines   int
}

func (v *chainVerifier) file(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxAuditLine)
	n := 0
	for sc.Scan() {
		n++
		if reason := v.next(sc.Bytes()); reason != "" {
			return &ChainError{File: name, Line: n, Reason: reason}
		}
		v.lines++
	}
	if err := sc.Err(); err != nil {
		return &ChainError{File: name, Line: n + 1, Reason: "unreadable line: " + err.Error()}
	}
	return nil
}

var macSuffix = []byte(`,"mac":"`)

// next checks one line and returns why it is broken, or "".
func (v *chainVerifier) next(line []byte) string {
	// ,"mac":"<64 hex>"}
	const tail = len(`,"mac":"`) + 64 + len(`"}`)
	if len(line) < tail || !bytes.HasSuffix(line, []byte(`"}`)) || !bytes.Equal(line[len(line)-tail:len(line)-tail+len(macSuffix)], macSuffix) {
		return "malformed line (no mac): the line was edited, or is not an airlock audit line"
	}
	body := line[:len(line)-tail]
	mac := line[len(line)-tail+len(macSuffix) : len(line)-2]
	if !hmac.Equal([]byte(lineMAC(v.key, body)), mac) {
		if !v.started {
			return "line altered, or written with another audit key (mac mismatch)"
		}
		return "line altered (mac mismatch)"
	}
	var l struct {
		Seq  uint64 `json:"seq"`
		Prev string `json:"prev"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return "malformed JSON"
	}
	switch {
	case !v.started && l.Seq <= 1 && l.Prev != "":
		return "first line of a chain carries a previous mac"
	case v.started && (l.Prev != v.prev || l.Seq != v.seq+1):
		return fmt.Sprintf("chain broken: expected seq %d after seq %d, got seq %d with another previous mac (lines removed, reordered or inserted before this one)", v.seq+1, v.seq, l.Seq)
	}
	v.started, v.seq, v.prev = true, l.Seq, string(mac)
	return ""
}
