package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var testAuditKey = []byte("0123456789abcdef0123456789abcdef")

// writeAudit writes n lines to a fresh audit log at path and closes it.
func writeAudit(t *testing.T, path string, n int, maxSize int64) {
	t.Helper()
	a, err := Open(Options{Path: path, Key: testAuditKey, MaxSize: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		a.Write(Line{Agent: "bot", Rule: "r", Decision: "inject", Method: "GET",
			Host: "api.example.com:443", Path: fmt.Sprintf("/v1/%d", i), Status: 200, Code: "OK", Door: "proxy"})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Dropped() != 0 {
		t.Fatalf("%d lines dropped", a.Dropped())
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	cases := map[string]struct {
		tamper   func(lines [][]byte) [][]byte
		key      []byte
		wantLine int // 0: verifies
		reason   string
	}{
		"untouched": {tamper: func(l [][]byte) [][]byte { return l }},
		"edited field": {tamper: func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte(`"agent":"bot"`), []byte(`"agent":"eve"`), 1)
			return l
		}, wantLine: 3, reason: "altered"},
		"edited mac": {tamper: func(l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte(`"mac":"`), []byte(`"mac":"0`), 1)
			l[3] = append(l[3][:len(l[3])-4], "\"}\n"...)
			return l
		}, wantLine: 4, reason: "altered"},
		"deleted line":       {tamper: func(l [][]byte) [][]byte { return slices.Delete(l, 2, 3) }, wantLine: 3, reason: "chain broken"},
		"deleted first line": {tamper: func(l [][]byte) [][]byte { return l[1:] }, wantLine: 1, reason: "lines before it were removed"},
		"swapped lines": {tamper: func(l [][]byte) [][]byte {
			l[4], l[5] = l[5], l[4]
			return l
		}, wantLine: 5, reason: "chain broken"},
		"duplicated line": {tamper: func(l [][]byte) [][]byte { return slices.Insert(l, 6, l[5]) }, wantLine: 7, reason: "chain broken"},
		"blank line":      {tamper: func(l [][]byte) [][]byte { return slices.Insert(l, 1, []byte("\n")) }, wantLine: 2, reason: "malformed"},
		"other key":       {tamper: func(l [][]byte) [][]byte { return l }, key: []byte("another key of 16+ bytes"), wantLine: 1, reason: "another audit key"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeAudit(t, path, 10, 0)
			writeLines(t, path, tc.tamper(readLines(t, path)))
			key := testAuditKey
			if tc.key != nil {
				key = tc.key
			}
			n, err := Verify(key, path)
			if tc.wantLine == 0 {
				if err != nil || n < 9 {
					t.Fatalf("verify: %d lines, %v", n, err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChain) {
				t.Fatalf("verify: %v, want a ChainError", err)
			}
			if ce.Line != tc.wantLine || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("got %v, want line %d (%s)", err, tc.wantLine, tc.reason)
			}
		})
	}
}

func TestAuditRotationKeepsChain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	writeAudit(t, path, 40, 1024)
	files, _ := filepath.Glob(path + ".*")
	if len(files) < 3 {
		t.Fatalf("want several rotated files, got %v", files)
	}
	slices.Sort(files)
	all := append(files, path)
	n, err := Verify(testAuditKey, all...)
	if err != nil || n != 40 {
		t.Fatalf("verify all: %d lines, %v", n, err)
	}
	for _, f := range all {
		if fi, _ := os.Stat(f); fi.Size() > 1024 {
			t.Errorf("%s is %d bytes, over the 1024 limit", f, fi.Size())
		}
	}
	if _, err := VerifyChain(testAuditKey, Start{After: files[len(files)-1]}, path); err != nil {
		t.Errorf("newest file alone, after the previous one: %v", err)
	}
	missing := slices.Delete(slices.Clone(all), 1, 2)
	var ce *ChainError
	if _, err := Verify(testAuditKey, missing...); !errors.As(err, &ce) || ce.File != all[2] || ce.Line != 1 {
		t.Errorf("rotated file removed: got %v, want %s:1", err, all[2])
	}
}

func TestAuditRestartContinuesChain(t *testing.T) {
	cases := map[string]struct {
		maxSize  int64
		moveAway bool // the operator renames the file (logrotate style)
		crash    bool // a partial last line before the restart
	}{
		"append":          {},
		"after rotation":  {maxSize: 600},
		"after move away": {moveAway: true},
		"after crash":     {crash: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			writeAudit(t, path, 3, tc.maxSize)
			if tc.moveAway {
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
			}
			if tc.crash {
				f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				f.WriteString(`{"seq":4,"ti`)
				f.Close()
			}
			writeAudit(t, path, 3, tc.maxSize)
			files, _ := filepath.Glob(path + ".*")
			slices.Sort(files)
			n, err := Verify(testAuditKey, append(files, path)...)
			if tc.crash {
				var ce *ChainError
				if !errors.As(err, &ce) || ce.Line != 4 {
					t.Fatalf("crash: got %d, %v; want the partial line 4 reported", n, err)
				}
				return
			}
			if err != nil || n != 6 {
				t.Fatalf("verify: %d lines, %v", n, err)
			}
		})
	}
}

func TestAuditWriteNeverBlocks(t *testing.T) {
	drops := 0
	a := &Log{queue: make(chan Line), onDrop: func() { drops++ }} // nobody reads
	for range 3 {
		a.Write(Line{})
	}
	if a.Dropped() != 3 || drops != 3 {
		t.Errorf("dropped %d (callback %d), want 3", a.Dropped(), drops)
	}
}

func TestAuditKeyRequired(t *testing.T) {
	if _, err := Open(Options{Path: filepath.Join(t.TempDir(), "a"), Key: []byte("short")}); !errors.Is(err, ErrKey) {
		t.Errorf("short key: %v", err)
	}
	if _, err := Verify(nil, "x"); !errors.Is(err, ErrKey) {
		t.Errorf("verify without key: %v", err)
	}
}

func TestAuditLinesHoldNoQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeAudit(t, path, 1, 0)
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"seq":1`, `"prev":""`, `"decision":"inject"`, `"mac":"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("line %s lacks %s", b, want)
		}
	}
}

// FuzzAuditVerifyLine feeds arbitrary lines to the verifier: it must never
// panic, and a line it accepts must be one sealed with the key.
func FuzzAuditVerifyLine(f *testing.F) {
	seeds, _ := os.ReadFile(filepath.Join("testdata", "audit.log"))
	for _, l := range bytes.Split(seeds, []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"seq":1,"prev":"","mac":"` + strings.Repeat("0", 64) + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		v := &chainVerifier{key: testAuditKey}
		if v.next(line) != "" {
			return
		}
		tail := len(line) - 66
		if lineMAC(testAuditKey, line[:tail-len(macSuffix)]) != string(line[tail:len(line)-2]) {
			t.Fatalf("accepted a line with a wrong mac: %q", line)
		}
	})
}
