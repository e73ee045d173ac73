package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// firstSeq is the seq of the first line of path.
func firstSeq(t *testing.T, path string) uint64 {
	t.Helper()
	var l struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(readLines(t, path)[0], &l); err != nil {
		t.Fatal(err)
	}
	return l.Seq
}

// TestVerifyHeadDeleted plays an intruder who deletes the first lines of
// the audit chain (issue 16, item 8): verification fails at the first line
// left, naming its seq, unless the operator said where the file starts.
func TestVerifyHeadDeleted(t *testing.T) {
	for _, cut := range []int{1, 3, 9} {
		t.Run(fmt.Sprintf("%d lines", cut), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeAudit(t, path, 10, 0)
			writeLines(t, path, readLines(t, path)[cut:])
			n, err := Verify(testAuditKey, path)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.File != path || ce.Line != 1 || !ce.Head || n != 0 {
				t.Fatalf("verify: %d lines, %v; want %s:1", n, err, path)
			}
			want := fmt.Sprintf("first line is seq %d", cut+1)
			if !strings.Contains(ce.Reason, want) || !strings.Contains(ce.Reason, "removed") {
				t.Errorf("reason %q does not say %q and that lines were removed", ce.Reason, want)
			}
			// The operator knows the file starts there: it verifies.
			if n, err := VerifyChain(testAuditKey, Start{Seq: uint64(cut + 1)}, path); err != nil || n != 10-cut {
				t.Errorf("--from %d: %d lines, %v", cut+1, n, err)
			}
			// Saying it starts at the genesis (or earlier) does not.
			if _, err := VerifyChain(testAuditKey, Start{Seq: 1}, path); !errors.As(err, &ce) || ce.Line != 1 || !strings.Contains(ce.Reason, "want seq 1") {
				t.Errorf("--from 1: %v, want line 1 refused", err)
			}
		})
	}
}

// TestVerifyStartAfter: with the previous file named, the first line must
// continue its last line; the wrong previous file, or one whose last line
// was edited, fails.
func TestVerifyStartAfter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	writeAudit(t, path, 40, 1024)
	files, _ := filepath.Glob(path + ".*")
	slices.Sort(files)
	if len(files) < 3 {
		t.Fatalf("want several rotated files, got %v", files)
	}
	last := files[len(files)-1]
	var ce *ChainError
	if _, err := Verify(testAuditKey, path); !errors.As(err, &ce) || ce.Line != 1 {
		t.Errorf("newest file alone from the genesis: %v, want line 1 refused", err)
	}
	cases := map[string]struct {
		start    Start
		files    []string
		wantFile string // "": verifies
		wantLine int
	}{
		"after the previous file":   {Start{After: last}, []string{path}, "", 0},
		"after an older file":       {Start{After: files[0]}, []string{path}, path, 1},
		"from its first seq":        {Start{Seq: firstSeq(t, path)}, []string{path}, "", 0},
		"all files from genesis":    {Start{}, append(slices.Clone(files), path), "", 0},
		"rotated head file removed": {Start{}, append(slices.Clone(files[1:]), path), files[1], 1},
		"after and from":            {Start{After: files[0], Seq: 99}, files[1:], "", 0}, // After wins: it links the line
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyChain(testAuditKey, tc.start, tc.files...)
			if tc.wantFile == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if !errors.As(err, &ce) || ce.File != tc.wantFile || ce.Line != tc.wantLine {
				t.Fatalf("verify: %v, want %s:%d", err, tc.wantFile, tc.wantLine)
			}
		})
	}
	lines := readLines(t, last)
	i := len(lines) - 2 // the last line (the split leaves an empty tail)
	lines[i] = []byte(strings.Replace(string(lines[i]), `"agent":"bot"`, `"agent":"eve"`, 1))
	writeLines(t, last, lines)
	if _, err := VerifyChain(testAuditKey, Start{After: last}, path); !errors.As(err, &ce) || ce.File != last || !strings.Contains(ce.Reason, "altered") {
		t.Errorf("edited previous file: %v, want its last line refused", err)
	}
}
