package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// A long-running `airlock serve` must not keep AIRLOCK_PASSPHRASE in its
// environment: /proc/PID/environ stays readable by the same user (an agent
// included) for the process's whole life, and Go cannot rewrite that
// block. So serve re-executes itself (same PID, same arguments) with the
// passphrase on an inherited pipe and the variable removed.

// passphraseFDEnv names the descriptor the re-executed serve reads the
// passphrase from (a number, not a secret).
const passphraseFDEnv = "AIRLOCK_PASSPHRASE_FD"

// inheritedPassphrase is the passphrase read from passphraseFDEnv at start.
var inheritedPassphrase []byte

// envPassphrase is AIRLOCK_PASSPHRASE, or what a re-executed serve read
// from its pipe.
func envPassphrase() []byte {
	if inheritedPassphrase != nil {
		return inheritedPassphrase
	}
	if p := os.Getenv("AIRLOCK_PASSPHRASE"); p != "" {
		return []byte(p)
	}
	return nil
}

// readInheritedPassphrase reads and closes the pipe hideEnvPassphrase
// handed over, and removes its variable (so `serve` does not pass it on).
func readInheritedPassphrase() error {
	v, ok := os.LookupEnv(passphraseFDEnv)
	if !ok {
		return nil
	}
	_ = os.Unsetenv(passphraseFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return withHint(fmt.Errorf("%s=%q is not a file descriptor", passphraseFDEnv, v), "unset "+passphraseFDEnv+"; airlock sets it for itself")
	}
	f := os.NewFile(uintptr(fd), "passphrase pipe")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxValueBytes))
	if err != nil || len(b) == 0 {
		return withHint(fmt.Errorf("read the passphrase from descriptor %d: %v", fd, err), "unset "+passphraseFDEnv+"; airlock sets it for itself")
	}
	inheritedPassphrase = b
	return nil
}

// hideEnvPassphrase re-executes this process without AIRLOCK_PASSPHRASE in
// its environment when it is there (Linux). It returns only when nothing
// had to be done or the re-exec failed (then with a warning).
func hideEnvPassphrase() {
	p := os.Getenv("AIRLOCK_PASSPHRASE")
	if p == "" || runtime.GOOS != "linux" {
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		warnEnvPassphrase(err)
		return
	}
	defer r.Close()
	if _, err := io.WriteString(w, p); err != nil { // < 64 KiB: fits the pipe buffer
		w.Close()
		warnEnvPassphrase(err)
		return
	}
	w.Close()
	fd := r.Fd()
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFD, 0); e != 0 { // inherit it across exec
		warnEnvPassphrase(e)
		return
	}
	env := []string{passphraseFDEnv + "=" + strconv.Itoa(int(fd))}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIRLOCK_PASSPHRASE=") && !strings.HasPrefix(kv, passphraseFDEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	warnEnvPassphrase(err)
}

func warnEnvPassphrase(err error) {
	fmt.Fprintf(Stderr, "airlock: warning: AIRLOCK_PASSPHRASE stays readable in /proc/%d/environ (%v); use --passphrase-file or AIRLOCK_KEY_FILE for services\n", os.Getpid(), err)
}
