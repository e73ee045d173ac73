package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// noExitSleep is the GORACE option that stops a -race binary from sleeping
// 1 s before it exits (the default atexit_sleep_ms=1000).
const noExitSleep = "atexit_sleep_ms=0"

// GORACE returns the "GORACE=..." environment entry for a subprocess: the
// options this process was given, plus atexit_sleep_ms=0 unless they set
// it already.
func GORACE() string {
	opts := os.Getenv("GORACE")
	if !strings.Contains(opts, "atexit_sleep_ms=") {
		opts = strings.TrimSpace(opts + " " + noExitSleep)
	}
	return "GORACE=" + opts
}

// Build builds the main package pkg (as `go build` names it, relative to
// the test's working directory, the package directory) into dir, with
// -race when this test binary was built with it, and returns the path of
// the binary. prebuilt, when not empty, is copied instead: a way to run
// the tests against another build, such as the code before a fix.
func Build(dir, pkg, prebuilt string) (string, error) {
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	bin := filepath.Join(dir, filepath.Base(abs))
	if prebuilt != "" {
		b, err := os.ReadFile(prebuilt)
		if err != nil {
			return "", fmt.Errorf("copy prebuilt %s: %w", prebuilt, err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			return "", fmt.Errorf("copy prebuilt %s: %w", prebuilt, err)
		}
		return bin, nil
	}
	args := []string{"build", "-o", bin}
	if Race {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// Main is a TestMain body for a package whose tests run the command pkg as
// a subprocess: it builds pkg once (see [Build]) into a temporary
// directory, stores the binary's path in *bin, sets GORACE (see [GORACE])
// in this process's environment so that every subprocess inherits it, runs
// the tests and removes the build. It returns the exit code for os.Exit.
func Main(m *testing.M, bin *string, pkg, prebuilt string) int {
	dir, err := os.MkdirTemp("", "airlock-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testkit:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(dir, pkg, prebuilt); err != nil {
		fmt.Fprintln(os.Stderr, "testkit: build:", err)
		return 1
	}
	k, v, _ := strings.Cut(GORACE(), "=")
	if err := os.Setenv(k, v); err != nil {
		fmt.Fprintln(os.Stderr, "testkit:", err)
		return 1
	}
	return m.Run()
}
