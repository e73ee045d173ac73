package main

import (
	"bufio"
	"errors"
	"os/exec"
	"syscall"
	"testing"
)

// TestRunForwardsSIGTERM: airlock run passes SIGTERM to the child and
// returns the child's exit code.
func TestRunForwardsSIGTERM(t *testing.T) {
	t.Parallel()
	e := initEnv(t)
	e.ok("", "agent", "add", "bot")
	e.standInProxy(t)
	cmd := exec.Command(airlockBin, "run", "--", "sh", "-c", `trap 'kill $!; exit 7' TERM; echo ready; sleep 30 & wait $!`)
	cmd.Env = e.environ()
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		_ = cmd.Process.Kill()
		t.Fatalf("child did not start: %q %v", line, err)
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("exit %v, want 7 (the child's trap)", err)
	}
}
