package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// Chain is one replica's audit files, in the order given (rotated files
// first). Replica is "" for files written outside fleet mode.
type Chain struct {
	Replica string
	Files   []string
}

// Chains groups audit files by the replica named in each file's first
// line (fleet mode: every replica keeps its own hash chain), keeping the
// order in which files were given and the order of first appearance of
// replicas. An empty file joins the chain of the file before it.
func Chains(files ...string) ([]Chain, error) {
	var out []Chain
	at := map[string]int{}
	last := ""
	for i, name := range files {
		r, empty, err := replicaOf(name)
		if err != nil {
			return nil, err
		}
		if empty && i > 0 {
			r = last
		}
		j, ok := at[r]
		if !ok {
			j = len(out)
			at[r] = j
			out = append(out, Chain{Replica: r})
		}
		out[j].Files = append(out[j].Files, name)
		last = r
	}
	return out, nil
}

// replicaOf reads the replica field of name's first line.
func replicaOf(name string) (replica string, empty bool, err error) {
	f, err := os.Open(name)
	if err != nil {
		return "", false, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxAuditLine)
	if !sc.Scan() {
		return "", true, sc.Err()
	}
	var l struct {
		Replica string `json:"replica"`
	}
	_ = json.Unmarshal(sc.Bytes(), &l) // a malformed line fails in VerifyChain, with its line number
	return l.Replica, false, nil
}
