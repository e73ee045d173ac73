package vault

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashDuringSave SIGKILLs a child that saves in a tight loop, at random
// points, 50 times; the vault must always open and hold one of the two
// values. Every 10th check unlocks with the passphrase (Argon2id), the
// others with the key file; both verify the whole file.
func TestCrashDuringSave(t *testing.T) {
	path, kf := fixtureCopy(t)
	const kills = 50
	midWrite := 0 // kills that left a temp file: the child died inside a save
	for i := range kills {
		cmd := helperCmd(t, "saveloop", path, kf)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// After 1-3 completed saves, kill at a random point of the next ones.
		err = readLines(bufio.NewReader(out), 1+rand.IntN(3))
		timer := time.AfterFunc(rand.N(4*time.Millisecond), func() { _ = cmd.Process.Kill() })
		if err != nil {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Fatalf("kill %d: %v; child stderr: %s", i, err, stderr.String())
		}
		if m, _ := filepath.Glob(path + ".tmp-*"); len(m) > 0 {
			midWrite++
		}
		u := Unlock{KeyFile: kf}
		if i%10 == 9 {
			u = Unlock{Passphrase: []byte(fixturePass)}
		}
		v, err := Open(path, u)
		if err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		c, err := v.Snapshot().Credential(loopPath)
		if err != nil || !(c.Value.Equal([]byte(loopValueA)) || c.Value.Equal([]byte(loopValueB))) {
			t.Fatalf("after kill %d: credential %v, %v", i, c, err)
		}
		if _, err := v.Snapshot().Credential(fixtureCredKey); err != nil {
			t.Fatalf("after kill %d: fixture credential lost: %v", i, err)
		}
	}
	t.Logf("%d of %d kills landed while a temp file existed", midWrite, kills)
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Update(func(*Data) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if stale, _ := filepath.Glob(path + ".tmp-*"); len(stale) != 0 {
		t.Fatalf("Update left stale temp files: %q", stale)
	}
}

// TestConcurrentWriterProcesses runs 8 processes that each add their own
// credentials at once; none may be lost.
func TestConcurrentWriterProcesses(t *testing.T) {
	path, kf := fixtureCopy(t)
	const procs, each = 8, 3
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, procs)
	for p := range procs {
		var paths []string
		for j := range each {
			paths = append(paths, fmt.Sprintf("proc%d/cred%d", p, j))
		}
		want = append(want, paths...)
		cmd := helperCmd(t, "update", path, kf, "PATHS="+strings.Join(paths, ","))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %d: %v: %s", p, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, err := Open(path, Unlock{Passphrase: []byte(fixturePass)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		c, err := v.Snapshot().Credential(p)
		if err != nil || !c.Value.Equal([]byte("v-"+p)) {
			t.Fatalf("credential %s: %v", p, err)
		}
	}
	if got := len(v.Snapshot().Credentials); got != len(want)+2 {
		t.Fatalf("%d credentials, want %d", got, len(want)+2)
	}
}

// TestDiskFull saves a large credential in a child whose file size limit
// (RLIMIT_FSIZE) is small: a clear error, the old vault intact, no temp
// file left.
func TestDiskFull(t *testing.T) {
	path, kf := fixtureCopy(t)
	before := readFile(t, path)
	cmd := helperCmd(t, "diskfull", path, kf, "FSIZE=65536")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	msg := string(out)
	for _, want := range []string{"save vault " + path, "file too large"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q lacks %q", msg, want)
		}
	}
	if !bytes.Equal(before, readFile(t, path)) {
		t.Fatal("vault changed")
	}
	if m, _ := filepath.Glob(path + ".tmp-*"); len(m) != 0 {
		t.Fatalf("temp files left: %q", m)
	}
	v, err := Open(path, Unlock{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	assertData(t, v.Snapshot(), fixtureData())
}
