package main

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A small pseudo-terminal helper: the tests drive airlock the way a
// person at a terminal does (prompts on the controlling terminal, typed
// answers, Ctrl-C).

// ptySession is one program running on its own pty as the controlling
// terminal of a new session.
type ptySession struct {
	t       *testing.T
	master  *os.File
	cmd     *exec.Cmd
	out     *lockedBuffer // everything the terminal showed
	seen    int           // offset up to which expect consumed out
	done    chan error
	drained chan struct{} // closed when the terminal has no writer left
}

// startPTY runs argv with env on a fresh pty (stdin, stdout and stderr).
func startPTY(t *testing.T, dir string, env []string, argv ...string) *ptySession {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q on a pty: %v", argv, err)
	}
	slave.Close()
	s := &ptySession{t: t, master: master, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1), drained: make(chan struct{})}
	go func() {
		defer close(s.drained)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			_, _ = s.out.Write(buf[:n])
			if err != nil {
				return // EIO once the session is gone
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
		master.Close()
	})
	return s
}

// send types text on the terminal.
func (s *ptySession) send(text string) {
	s.t.Helper()
	if _, err := s.master.Write([]byte(text)); err != nil {
		s.t.Fatalf("type on the pty: %v\nterminal:\n%s", err, s.out.String())
	}
}

// expect waits until the terminal shows one of wants after what earlier
// calls consumed, and returns which. It fails the test when the program
// exits first or after d.
func (s *ptySession) expect(d time.Duration, wants ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		text := s.out.String()
		best, bestAt := "", -1
		for _, w := range wants {
			if i := strings.Index(text[s.seen:], w); i >= 0 && (bestAt < 0 || i < bestAt) {
				best, bestAt = w, i
			}
		}
		if bestAt >= 0 {
			s.seen += bestAt + len(best)
			return best
		}
		select {
		case err := <-s.done:
			s.done <- err
			select {
			case <-s.drained:
			case <-time.After(5 * time.Second):
			}
			if text := s.out.String()[s.seen:]; slices.ContainsFunc(wants, func(w string) bool { return strings.Contains(text, w) }) {
				continue
			}
			s.t.Fatalf("program exited (%v) before showing %q\nterminal:\n%s", err, wants, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("after %v the terminal does not show %q\nterminal:\n%s", d, wants, s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the program to exit and returns its exit code, after
// the terminal showed all it wrote.
func (s *ptySession) wait(d time.Duration) int {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		select {
		case <-s.drained:
		case <-time.After(5 * time.Second): // a background child still holds the terminal
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(d):
		s.t.Fatalf("program did not exit within %v\nterminal:\n%s", d, s.out.String())
	}
	return -1
}
