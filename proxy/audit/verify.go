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
	"strings"
)

// ErrChain is wrapped by the [ChainError] of a failed verification.
var ErrChain = errors.New("audit chain broken")

// ChainError names the first line of an audit file that fails
// verification (lines count from 1 in each file; 0: the last line of the
// previous file given as Start.After).
type ChainError struct {
	File   string
	Line   int
	Reason string
	Head   bool // the first line is not where the chain (or Start) begins: head lines missing
}

func (e *ChainError) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Reason
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Reason
}

func (e *ChainError) Unwrap() error { return ErrChain }

// maxAuditLine bounds one line read by Verify.
const maxAuditLine = 1 << 20

// Start says where the first file given to [VerifyChain] begins.
//
// The zero Start is the chain's genesis: the first line must be seq 1
// with no previous mac, so a file whose first lines were deleted fails
// at its first line. When older files are gone on purpose (retention),
// the operator names the start: Seq, the seq the first line must carry
// (its link to the line before is not checked), or After, the previous
// audit file, whose last line (its own mac checked) the first line must
// continue.
type Start struct {
	Seq   uint64
	After string
}

// Verify checks files as one chain starting at its genesis:
// VerifyChain(key, Start{}, files...).
func Verify(key []byte, files ...string) (int, error) {
	return VerifyChain(key, Start{}, files...)
}

// VerifyChain checks files as one chain, in the order given (rotated
// files first: `FILE.* FILE`), beginning where start says, and returns
// the number of lines verified. Every line after the first must carry the
// mac of the line before it. A failure is a *ChainError for the first
// broken line.
func VerifyChain(key []byte, start Start, files ...string) (int, error) {
	if len(key) < 16 {
		return 0, ErrKey
	}
	v := &chainVerifier{key: key, fromSeq: start.Seq}
	if start.After != "" {
		if err := v.anchor(start.After); err != nil {
			return 0, err
		}
	}
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
	fromSeq uint64 // Start.Seq: the first line's seq; 0: genesis
	started bool
	seq     uint64
	prev    string
	replica string // of the chain's lines
	lines   int
}

// anchor takes the chain state from the last line of a previous file,
// after checking that line's own mac.
func (v *chainVerifier) anchor(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open previous audit log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open previous audit log: %w", err)
	}
	last, complete, err := lastLine(f, fi.Size())
	if err != nil {
		return fmt.Errorf("read previous audit log %s: %w", name, err)
	}
	if len(last) == 0 || !complete {
		return &ChainError{File: name, Line: 0, Reason: "the last line is missing or incomplete: it cannot anchor the next file"}
	}
	anchor := &chainVerifier{key: v.key, started: true} // its own link is not checked
	if reason := anchor.check(last, false); reason != "" {
		return &ChainError{File: name, Line: 0, Reason: "last line: " + reason}
	}
	v.started, v.seq, v.prev = true, anchor.seq, anchor.prev
	return nil
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
		head := !v.started
		if reason := v.next(sc.Bytes()); reason != "" {
			return &ChainError{File: name, Line: n, Reason: reason, Head: head && strings.HasPrefix(reason, headReason)}
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
func (v *chainVerifier) next(line []byte) string { return v.check(line, true) }

// check verifies line's mac and, when link, its place in the chain.
func (v *chainVerifier) check(line []byte, link bool) string {
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
		Seq     uint64 `json:"seq"`
		Prev    string `json:"prev"`
		Replica string `json:"replica"`
	}
	if err := json.Unmarshal(line, &l); err != nil {
		return "malformed JSON"
	}
	if v.started && l.Replica != v.replica {
		return fmt.Sprintf("line of replica %q inside the chain of replica %q: give each replica's files as their own chain", l.Replica, v.replica)
	}
	v.replica = l.Replica
	if link {
		if reason := v.link(l.Seq, l.Prev); reason != "" {
			return reason
		}
	}
	v.started, v.seq, v.prev = true, l.Seq, string(mac)
	return ""
}

// headReason starts the reasons for a first line that is not where the
// chain begins.
const headReason = "first line"

// link checks that a line with seq and prev may come next.
func (v *chainVerifier) link(seq uint64, prev string) string {
	switch {
	case v.started && (prev != v.prev || seq != v.seq+1):
		return fmt.Sprintf("chain broken: expected seq %d after seq %d, got seq %d with another previous mac (lines removed, reordered or inserted before this one)", v.seq+1, v.seq, seq)
	case v.started:
		return ""
	case v.fromSeq != 0 && seq != v.fromSeq:
		return fmt.Sprintf(headReason+" is seq %d, want seq %d (--from): lines before it were removed, or the file starts elsewhere", seq, v.fromSeq)
	case v.fromSeq == 0 && (seq != 1 || prev != ""):
		return fmt.Sprintf(headReason+" is seq %d, not the start of a chain (seq 1 without a previous mac): lines before it were removed; "+
			"if older files were deleted on purpose, say where this one starts (--from %d, or --after the previous file)", seq, seq)
	}
	return ""
}
