package vault

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Values the save-loop helper alternates between.
const (
	loopPath   = "loop/value"
	loopValueA = "value-A-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	loopValueB = "value-B-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	bigCredLen = 1 << 20
)

// runHelper runs in the child process. Environment: helperEnv (the mode),
// VAULT, KEYFILE, and per mode PATHS (comma-separated) or FSIZE (bytes).
func runHelper(mode string) int {
	v, err := Open(os.Getenv("VAULT"), Unlock{KeyFile: os.Getenv("KEYFILE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch mode {
	case "saveloop":
		return helperSaveLoop(v)
	case "update":
		return helperUpdate(v, strings.Split(os.Getenv("PATHS"), ","))
	case "diskfull":
		return helperDiskFull(v)
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// helperSaveLoop saves alternating values forever, printing a line after
// each save, until the parent kills it.
func helperSaveLoop(v *Vault) int {
	for i := 0; ; i++ {
		val := loopValueA
		if i%2 == 1 {
			val = loopValueB
		}
		err := v.Update(func(d *Data) error {
			d.SetCredential(&Credential{Path: loopPath, Value: NewSecret([]byte(val))})
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("saved")
	}
}

func helperUpdate(v *Vault, paths []string) int {
	for _, p := range paths {
		err := v.Update(func(d *Data) error {
			d.SetCredential(&Credential{Path: p, Value: NewSecret([]byte("v-" + p))})
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// helperDiskFull limits the size of files this process may write, then
// tries to save a credential too large for the limit. It prints the error.
func helperDiskFull(v *Vault) int {
	limit, err := strconv.ParseUint(os.Getenv("FSIZE"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	signal.Ignore(syscall.SIGXFSZ) // get EFBIG instead of dying
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	before := v.Snapshot()
	err = v.Update(func(d *Data) error {
		d.SetCredential(&Credential{Path: "big/one", Value: NewSecret(make([]byte, bigCredLen))})
		return nil
	})
	if err == nil {
		fmt.Println("saved despite the limit")
		return 3
	}
	if v.Snapshot() != before {
		fmt.Println("snapshot changed after a failed save")
		return 4
	}
	fmt.Println(err)
	return 0
}

// helperCmd prepares a child running mode on the vault.
func helperCmd(t *testing.T, mode, path, keyFile string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "VAULT="+path, "KEYFILE="+keyFile)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// readLines reads n lines from r, failing on EOF (the child died).
func readLines(r *bufio.Reader, n int) error {
	for range n {
		if _, err := r.ReadString('\n'); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("child exited early")
			}
			return err
		}
	}
	return nil
}
