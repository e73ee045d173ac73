package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestArgCounts(t *testing.T) {
	cases := map[string][2]int{
		"":                 {0, 0},
		"PATH":             {1, 1},
		"[FILE]":           {0, 1},
		"METHOD URL":       {2, 2},
		"FILE...":          {1, -1},
		"[COMMAND...]":     {0, -1},
		"-- CMD [ARGS...]": {1, -1},
		"bash|zsh|fish":    {1, 1},
		"NAME [ALIAS]":     {1, 2},
	}
	for syn, want := range cases {
		if min, max := argCounts(syn); min != want[0] || max != want[1] {
			t.Errorf("%q: %d..%d, want %d..%d", syn, min, max, want[0], want[1])
		}
	}
}

// TestEveryCommandHasHelp walks the table: each leaf's help is generated
// from its flag set, printed once on stdout, and names every flag.
func TestEveryCommandHasHelp(t *testing.T) {
	saved, savedOut, savedErr := Stdout, Stderr, Stdin
	defer func() { Stdout, Stderr = saved, savedOut; Stdin = savedErr }()
	t.Setenv("AIRLOCK_HOME", t.TempDir())
	var walk func(path []string, table []*command)
	walk = func(path []string, table []*command) {
		for _, c := range table {
			p := append(append([]string{}, path...), c.name)
			if (c.setup == nil) == (c.sub == nil) {
				t.Errorf("%v: want exactly one of setup and sub", p)
				continue
			}
			if c.sub != nil {
				walk(p, c.sub)
				continue
			}
			for _, args := range [][]string{append([]string{"help"}, p...), append(p, "--help")} {
				var out, errb bytes.Buffer
				Stdout, Stderr = &out, &errb
				if code := runCLI(args); code != 0 || errb.Len() > 0 {
					t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
				}
				want := "usage: airlock " + strings.Join(p, " ")
				if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "usage: ") != 1 || !strings.Contains(out.String(), c.summary) {
					t.Errorf("%v: help %q, want it to start with %q once and hold the summary", args, out.String(), want)
				}
				fs, _ := c.flags(&globals{}, "airlock "+strings.Join(p, " "))
				fs.VisitAll(func(f *flag.Flag) {
					if !strings.Contains(out.String(), "-"+f.Name) {
						t.Errorf("%v: help lacks flag -%s", args, f.Name)
					}
				})
			}
		}
	}
	walk(nil, commands)
}

func TestChildEnv(t *testing.T) {
	parent := []string{"PATH=/bin", "AIRLOCK_PASSPHRASE=p", "AIRLOCK_KEY_FILE=/k", "AIRLOCK_HOME=/h", "airlock_lower=x",
		"AIRLOCK_PASSPHRASE_FD=3", "HTTPS_PROXY=http://old", "HOME=/root", "NOTAIRLOCK_X=keep"}
	got := childEnv(parent, []envVar{{"HTTPS_PROXY", "http://new"}, {"SSL_CERT_FILE", "/b.pem"}})
	want := []string{"PATH=/bin", "HOME=/root", "NOTAIRLOCK_X=keep", "HTTPS_PROXY=http://new", "SSL_CERT_FILE=/b.pem"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("childEnv = %q, want %q", got, want)
	}
}

// TestReadmeCLIReferenceListsEveryCommand: every command name of the
// table appears in the README's "## CLI" reference, after its group.
func TestReadmeCLIReferenceListsEveryCommand(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	must(t, err)
	_, ref, _ := strings.Cut(string(md), "\n## CLI\n")
	ref, _, _ = strings.Cut(ref, "\n## ")
	walkTable(commands, nil, func(path []string, c *command) {
		loc := regexp.MustCompile(`(airlock|\|) ` + regexp.QuoteMeta(path[0]) + `\b`).FindStringIndex(ref)
		if loc == nil || !regexp.MustCompile(`\b`+regexp.QuoteMeta(c.name)+`\b`).MatchString(ref[loc[0]:]) {
			t.Errorf("README CLI reference lacks %q", strings.Join(path, " "))
		}
	})
}
