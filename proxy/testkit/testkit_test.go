package testkit

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestGORACE(t *testing.T) {
	cases := map[string]struct{ env, want string }{
		"unset":      {"", "GORACE=atexit_sleep_ms=0"},
		"other opts": {"halt_on_error=1", "GORACE=halt_on_error=1 atexit_sleep_ms=0"},
		"own sleep":  {"atexit_sleep_ms=50", "GORACE=atexit_sleep_ms=50"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("GORACE", tc.env)
			if got := GORACE(); got != tc.want {
				t.Fatalf("GORACE() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWaitFor: a condition that turns true is waited for; one that never
// does (WaitUntil) fails the test with its error, after the deadline and not before.
func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("fn called %d times, want 3", n)
	}
	if os.Getenv("TESTKIT_CHILD") == "timeout" {
		WaitUntil(t, 50*time.Millisecond, "the moon turning blue", func() bool { return false })
		return
	}
	start := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWaitFor$")
	cmd.Env = append(os.Environ(), "TESTKIT_CHILD=timeout", GORACE())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not within 50ms: the moon turning blue") {
		t.Fatalf("a condition that never holds: err %v, output:\n%s", err, out)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("failed before the deadline")
	}
}

// TestBuild builds a command (this package's testdata/hello) and checks
// it runs, and that the build has -race exactly when the test has it.
func TestBuild(t *testing.T) {
	bin, err := Build(t.TempDir(), "./testdata/hello", "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if got := strings.Contains(string(out), "-race=true"); got != Race {
		t.Fatalf("binary has -race %v, test binary %v:\n%s", got, Race, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), GORACE())
	if out, err := cmd.Output(); err != nil || string(out) != "hello\n" {
		t.Fatalf("run: %q %v", out, err)
	}
	if _, err := Build(t.TempDir(), "./testdata/nope", ""); err == nil || !strings.Contains(err.Error(), "go build") {
		t.Fatalf("missing package: err %v", err)
	}
	copied, err := Build(t.TempDir(), "./testdata/hello", bin)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(copied)
	cmd.Env = append(os.Environ(), GORACE())
	if out, err := cmd.Output(); err != nil || string(out) != "hello\n" {
		t.Fatalf("prebuilt copy: %q %v", out, err)
	}
}
