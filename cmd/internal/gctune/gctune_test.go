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
		{32 << 20, 100},         // the headroom is the heap: GOGC=100
		{48 << 20, 66},          // 32 MiB of headroom over 48
		{64 << 20, MinPercent},  // headroom = live/2 from here on
		{65 << 20, MinPercent},  // 49 clamps to the floor
		{300 << 20, MinPercent}, // thousands of streams: 1.5x live, not 2x
		{8 << 30, MinPercent},   // never below the floor, however large (no memory limit)
	}
	for _, c := range cases {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// The headroom GOGC gives (live × GOGC/100) is max(Headroom, live/2) for
// every live heap past the cap's range, to within GOGC's integer
// rounding: a large heap grows at most half its size between collections
// (not twice it, as at GOGC=100), and the goal is never pinned near the
// live heap, however large it is (the death spiral of a memory limit).
func TestHeadroom(t *testing.T) {
	prev := MaxPercent
	for live := uint64(8 << 20); live <= 64<<30; live += live / 10 {
		p := Percent(live)
		if p > prev {
			t.Fatalf("Percent(%d MiB) = %d rises above %d: GOGC must not grow with the heap", live>>20, p, prev)
		}
		prev = p
		got, want := live*uint64(p)/100, max(uint64(Headroom), live/2)
		if got > want || got < want-live/100 {
			t.Errorf("live %d MiB: GOGC %d gives %d MiB of headroom, want %d MiB", live>>20, p, got>>20, want>>20)
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

// The tuner follows a real heap: 96 MiB kept live brings GOGC down to
// the floor after a collection, and dropping it brings it back up.
func TestStartFollowsALargeHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	startUnset(t)
	waitPercent := func(want func(int) bool, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !want(Current()); {
			runtime.GC()
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d, want %s", Current(), what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	big := make([][]byte, 96)
	for i := range big {
		big[i] = make([]byte, 1<<20)
		big[i][0] = 1
	}
	waitPercent(func(p int) bool { return p == MinPercent }, "the floor with 96 MiB live")
	runtime.KeepAlive(big)
	big = nil
	waitPercent(func(p int) bool { return p > 100 }, "above 100 once the heap is small again")
}
