package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseEnvFile(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    []envEntry
		errLine int
	}{
		"plain":            {in: "A=1\n", want: []envEntry{{"A", "1", 1}}},
		"comments, blanks": {in: "# c\n\n  # d\nB=2", want: []envEntry{{"B", "2", 4}}},
		"export prefix":    {in: "export  C=3", want: []envEntry{{"C", "3", 1}}},
		"export as name":   {in: "export=4", want: []envEntry{{"export", "4", 1}}},
		"double quoted":    {in: `D="a b\n\"c\"\\"`, want: []envEntry{{"D", "a b\n\"c\"\\", 1}}},
		"single quoted":    {in: `E='a "b" \n'`, want: []envEntry{{"E", `a "b" \n`, 1}}},
		"quoted comment":   {in: `F="x # y" # z`, want: []envEntry{{"F", "x # y", 1}}},
		"unquoted comment": {in: "G=x # y", want: []envEntry{{"G", "x", 1}}},
		"hash inside":      {in: "H=a#b", want: []envEntry{{"H", "a#b", 1}}},
		"equals in value":  {in: "I=a=b=c", want: []envEntry{{"I", "a=b=c", 1}}},
		"crlf":             {in: "J=1\r\nK=2\r\n", want: []envEntry{{"J", "1", 1}, {"K", "2", 2}}},
		"spaces round =":   {in: "L = v ", want: []envEntry{{"L", "v", 1}}},
		"empty value":      {in: "M=", want: []envEntry{{"M", "", 1}}},
		"no equals":        {in: "A=1\nnope\n", errLine: 2},
		"bad name":         {in: "1A=x", errLine: 1},
		"name with dash":   {in: "\n\nA-B=x", errLine: 3},
		"unclosed double":  {in: `A="x`, errLine: 1},
		"unclosed single":  {in: `A='x`, errLine: 1},
		"text after quote": {in: `A="x"y`, errLine: 1},
		"export only":      {in: "export", errLine: 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseEnvFile([]byte(tc.in))
			var le *envLineError
			if tc.errLine != 0 {
				if !errors.As(err, &le) || le.Line != tc.errLine || got != nil {
					t.Fatalf("got %v, %v; want an error on line %d", got, err, tc.errLine)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestEnvLineErrorHidesValue: a malformed line's text (maybe a secret)
// never reaches the error.
func TestEnvLineErrorHidesValue(t *testing.T) {
	for _, in := range []string{"sk-secret-123", `KEY="sk-secret-123`, `KEY='sk-secret-123' trailing`} {
		_, err := parseEnvFile([]byte(in))
		if err == nil || strings.Contains(err.Error(), "sk-secret-123") {
			t.Errorf("%q: error %v", in, err)
		}
	}
}

// FuzzParseEnvFile: no panics, keys are valid, and entries written back in
// double-quoted form parse to the same entries.
func FuzzParseEnvFile(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "env", "*.env"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseEnvFile(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		var b strings.Builder
		for _, e := range entries {
			if !envKeyRE.MatchString(e.Key) {
				t.Fatalf("invalid key %q", e.Key)
			}
			b.WriteString(e.Key + "=" + quoteEnv(e.Value) + "\n")
		}
		again, err := parseEnvFile([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-parse %q: %v", b.String(), err)
		}
		if len(again) != len(entries) {
			t.Fatalf("re-parse gave %d entries, want %d", len(again), len(entries))
		}
		for i := range again {
			if again[i].Key != entries[i].Key || again[i].Value != entries[i].Value {
				t.Fatalf("entry %d: %+v != %+v", i, again[i], entries[i])
			}
		}
	})
}

// quoteEnv writes v as a double-quoted .env value.
func quoteEnv(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
	return `"` + r.Replace(v) + `"`
}

func TestParseExpires(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]struct {
		in   string
		want time.Time
		err  bool
	}{
		"days":        {in: "30d", want: now.Add(30 * 24 * time.Hour)},
		"hours":       {in: "12h", want: now.Add(12 * time.Hour)},
		"days+hours":  {in: "1d12h", want: now.Add(36 * time.Hour)},
		"rfc3339":     {in: "2031-05-06T07:08:09Z", want: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)},
		"date":        {in: "2031-05-06", want: time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)},
		"never":       {in: "never"},
		"empty":       {in: ""},
		"past":        {in: "2001-01-01T00:00:00Z", err: true},
		"zero":        {in: "0h", err: true},
		"negative":    {in: "-5h", err: true},
		"garbage":     {in: "soon", err: true},
		"bad days":    {in: "xd", err: true},
		"huge days":   {in: "99999999d", err: true},
		"days suffix": {in: "3dd", err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseExpires(tc.in, now)
			if (err != nil) != tc.err || !got.Equal(tc.want) {
				t.Fatalf("parseExpires(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestFlagSetInterspersed(t *testing.T) {
	cases := map[string]struct {
		args         []string
		interspersed bool
		wantArgs     []string
		wantExp      string
		wantYes      bool
	}{
		"flags first":      {[]string{"--expires", "1d", "a/b"}, true, []string{"a/b"}, "1d", false},
		"flags after":      {[]string{"a/b", "--expires=1d", "--yes"}, true, []string{"a/b"}, "1d", true},
		"mixed":            {[]string{"-yes", "a", "b", "-expires", "2h"}, true, []string{"a", "b"}, "2h", true},
		"double dash":      {[]string{"a", "--", "--yes"}, true, []string{"a", "--yes"}, "", false},
		"not interspersed": {[]string{"--yes", "sh", "-c", "x"}, false, []string{"sh", "-c", "x"}, "", true},
		"dash value":       {[]string{"-", "--yes"}, true, []string{"-"}, "", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fs := newFlagSet("t")
			fs.interspersed = tc.interspersed
			exp := fs.String("expires", "", "")
			yes := fs.Bool("yes", false, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fs.Args(), tc.wantArgs) || *exp != tc.wantExp || *yes != tc.wantYes {
				t.Fatalf("args %q expires %q yes %v", fs.Args(), *exp, *yes)
			}
		})
	}
	var ue *usageErr
	if err := newFlagSet("t").Parse([]string{"--nope"}); !errors.As(err, &ue) {
		t.Fatalf("unknown flag: %v, want a usage error", err)
	}
}

func TestCheckCredPath(t *testing.T) {
	good := []string{"a", "openai/api-key", "env/OPENAI_API_KEY", "a.b/c_d/e-f", "x/..y"}
	bad := []string{"", "/a", "a/", "a//b", "a/../b", "..", ".", "a b", "a/\x00", "ä", strings.Repeat("a", 257)}
	for _, p := range good {
		if err := checkCredPath(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	for _, p := range bad {
		if err := checkCredPath(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
}

// TestShellQuoting feeds the quoted forms to a real sh.
func TestShellQuoting(t *testing.T) {
	for _, v := range []string{"plain", "it's", `a"b$c\d`, "x'y'z", "", "new\nline"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shQuote(v)).Output()
		if err != nil || string(out) != v {
			t.Errorf("sh round trip of %q: %q, %v", v, out, err)
		}
	}
	if got := fishQuote(`a'b\c`); got != `'a\'b\\c'` {
		t.Errorf("fishQuote = %s", got)
	}
}

// TestPanicRecovered: a panicking command prints an internal error with a
// hint, not a Go panic.
func TestPanicRecovered(t *testing.T) {
	saved, savedOut, savedErr := commands, Stdout, Stderr
	defer func() { commands, Stdout, Stderr = saved, savedOut, savedErr }()
	commands = append(append([]*command{}, saved...), &command{name: "boom",
		setup: func(*globals, *flagSet) runFunc { return func([]string) error { panic("secret sk-boom") } }})
	var out, errb bytes.Buffer
	Stdout, Stderr = &out, &errb
	t.Setenv("AIRLOCK_HOME", t.TempDir())
	code := runCLI([]string{"boom"})
	s := errb.String()
	if code != exitFailure || !strings.Contains(s, "airlock: error: internal error\n") ||
		!strings.Contains(s, "airlock: hint: ") || strings.Contains(s, "sk-boom") || strings.Contains(s, "goroutine") {
		t.Fatalf("exit %d, stderr:\n%s", code, s)
	}
}

func TestHintOf(t *testing.T) {
	err := withHint(errors.New("inner"), "do this")
	wrapped := errors.Join(errors.New("x"), err)
	if hintOf(wrapped) != "do this" || hintOf(errors.New("plain")) != "" || withHint(nil, "x") != nil {
		t.Fatal("hintOf / withHint")
	}
}
