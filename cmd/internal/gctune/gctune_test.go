package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	cases := []struct {
		live uint64
		want int
	}{
		{0, MaxPercent},
		{4 << 20, MaxPercent}, // would be 800
		{8 << 20, 400},        // exactly the cap
		{16 << 20, 200},
		{32 << 20, 100},  // the headroom is the heap: GOGC=100
		{48 << 20, 100},  // 66 clamps to 100
		{300 << 20, 100}, // thousands of streams: never below 100
	}
	for _, c := range cases {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

func TestEnabled(t *testing.T) {
	env := func(set ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for _, s := range set {
				if s == k {
					return "1", true
				}
			}
			return "", false
		}
	}
	for name, c := range map[string]struct {
		set  []string
		want bool
	}{
		"nothing set":     {nil, true},
		"GOGC set":        {[]string{"GOGC"}, false},
		"GOMEMLIMIT set":  {[]string{"GOMEMLIMIT"}, false},
		"both set":        {[]string{"GOGC", "GOMEMLIMIT"}, false},
		"unrelated names": {[]string{"GODEBUG"}, true},
	} {
		if got := Enabled(env(c.set...)); got != c.want {
			t.Errorf("%s: Enabled = %v, want %v", name, got, c.want)
		}
	}
}

// Start sets GOGC for this (small) test heap and keeps following it
// after collections: GOGC is moved away behind its back and a collection
// brings it back.
func TestStartFollowsCollections(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	// t.Setenv sets them (to ""): Start must refuse, as with any value.
	if Start() {
		t.Fatal("Start ran with GOGC set in the environment")
	}
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	startUnset(t)
	if got := Current(); got != MaxPercent {
		t.Fatalf("GOGC after Start = %d, want %d for a test-sized heap", got, MaxPercent)
	}
	for range 3 { // let the first cycles' finalizers run: what follows needs a re-armed one
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	current.Store(0) // as if someone else had set it: the next cycle re-sets it
	debug.SetGCPercent(100)
	for deadline := time.Now().Add(5 * time.Second); Current() != MaxPercent; {
		runtime.GC()
		if time.Now().After(deadline) {
			t.Fatal("GOGC not re-set after collections (the finalizer hook is not re-armed)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetGCPercent(MaxPercent); got != MaxPercent {
		t.Fatalf("runtime GOGC = %d, want %d", got, MaxPercent)
	}
}

// startUnset runs Start as with neither variable in the environment.
func startUnset(t *testing.T) {
	t.Helper()
	if started.CompareAndSwap(false, true) { // else armed by an earlier run (-count)
		adjust()
		arm()
	}
}
