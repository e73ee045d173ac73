package readmap

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestGetMakesOncePerKey(t *testing.T) {
	m := New[string, int](100)
	made := 0
	for range 3 {
		for i := range 50 {
			if got := m.Get(strconv.Itoa(i), func() int { made++; return i }); got != i {
				t.Fatalf("key %d: %d", i, got)
			}
		}
	}
	if made != 50 {
		t.Fatalf("made %d values for 50 keys", made)
	}
}

// A flood of new keys (a hostile upstream naming random models, say)
// keeps the map within its bound, and costs copies in proportion to the
// keys, not to their square.
func TestBoundAndLinearCopies(t *testing.T) {
	m := New[int, int](1000)
	for i := range 5000 {
		m.Get(i, func() int { return i })
		if n := m.Len(); n > 1000 {
			t.Fatalf("after %d keys the map holds %d, bound 1000", i+1, n)
		}
	}
	big := New[int, int](1 << 20)
	const n = 20000
	for i := range n {
		big.Get(i, func() int { return i })
	}
	if big.copied > 8*n {
		t.Fatalf("%d keys cost %d entry copies (copying the map per key: about %d)", n, big.copied, n*n/2)
	}
	if big.Len() != n {
		t.Fatalf("holds %d of %d keys", big.Len(), n)
	}
}

// A key made in a burst, still in the locked map, reaches the lock-free
// one once mergeAfter has passed and the map is used again.
func TestBurstKeyMergedAfterAWhile(t *testing.T) {
	m := New[int, int](1000)
	for i := range 40 { // a burst: more than one merge's worth, then a few left over
		m.Get(i, func() int { return i })
	}
	time.Sleep(mergeAfter + 10*time.Millisecond)
	m.Get(39, func() int { t.Fatal("made again"); return 0 })
	if _, ok := (*m.snap.Load())[39]; !ok {
		t.Fatal("a key read after mergeAfter is still outside the lock-free map")
	}
}

func TestConcurrentGets(t *testing.T) {
	m := New[int, int](64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := (i * (g + 1)) % 100
				if v := m.Get(k, func() int { return k * 2 }); v != k*2 {
					t.Errorf("key %d: %d", k, v)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The zero Map is ready and bounded by DefaultMax; Clear drops every key,
// merged or pending (a reload: the old keys hold old secrets alive).
func TestZeroMapAndClear(t *testing.T) {
	var m Map[int, int]
	made := 0
	for i := range DefaultMax + 10 {
		m.Get(i, func() int { made++; return i })
	}
	if n := m.Len(); n > DefaultMax {
		t.Fatalf("the zero map holds %d keys, bound %d", n, DefaultMax)
	}
	m.Get(1, func() int { return 1 }) // one merged or pending, one new
	m.Get(-1, func() int { return -1 })
	m.Clear()
	if n := m.Len(); n != 0 {
		t.Fatalf("%d keys after Clear", n)
	}
	made = 0
	if got := m.Get(-1, func() int { made++; return -2 }); got != -2 || made != 1 {
		t.Fatalf("after Clear: %d (made %d), want the value made again", got, made)
	}
}
