//go:build linux

package park

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T, l net.Listener) (client, server *net.TCPConn) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func rawOf(t *testing.T, c *net.TCPConn) (syscall.RawConn, int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	_ = rc.Control(func(f uintptr) { fd = int(f) })
	return rc, fd
}

// slotPair is a loopback connection and a slot on its server end that
// starts its readies with run; both ends close when the test ends.
func slotPair(t *testing.T, run func(func())) (client, server *net.TCPConn, slot *Slot) {
	t.Helper()
	c, s := pair(t, listen(t))
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	rc, _ := rawOf(t, s)
	return c, s, NewSlot(rc, run)
}

// wakeOnce arms slot, sends a byte to its socket and waits for the wake,
// then reads the byte: the slot is armed (and the only wait armed) until
// the wake, and nothing is armed after it.
func wakeOnce(t *testing.T, c, s *net.TCPConn, slot *Slot, round int) {
	t.Helper()
	woke := make(chan struct{}, 1)
	if err := slot.Wait(func() { woke <- struct{}{} }); err != nil {
		t.Fatalf("round %d: Wait: %v", round, err)
	}
	if p := Parked(); p != 1 {
		t.Fatalf("round %d: %d armed, want 1", round, p)
	}
	_, _ = c.Write([]byte("x"))
	select {
	case <-woke:
	case <-time.After(3 * time.Second):
		t.Fatalf("round %d: the armed wait never woke", round)
	}
	_, _ = s.Read(make([]byte, 16)) // drain: the next wait must see new bytes
	if p := Parked(); p != 0 {
		t.Fatalf("round %d: %d armed after the wake", round, p)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// A socket closed while it waits (its fd silently leaves epoll) and a new
// socket given the same fd number: the old wait, cancelled late, must
// neither take the new socket's registration away nor receive its event.
func TestReusedFdWakesOnlyItsOwnWait(t *testing.T) {
	l := listen(t)
	for try := 0; ; try++ {
		if try == 20 {
			t.Skip("the kernel never handed the closed fd number to the next socket")
		}
		ac, as := pair(t, l)
		rcA, fdA := rawOf(t, as)
		var firedA, firedB atomic.Int32
		wA := NewWaiter(func() { firedA.Add(1) }, nil)
		if err := wA.Arm(rcA); err != nil {
			t.Fatal(err)
		}
		_ = as.Close() // behind the wait's back
		_ = ac.Close()
		bc, bs := pair(t, l)
		rcB, fdB := rawOf(t, bs)
		if fdB != fdA {
			_ = bc.Close()
			_ = bs.Close()
			_ = wA.Cancel()
			continue
		}
		wakeB := make(chan struct{})
		wB := NewWaiter(func() { firedB.Add(1); close(wakeB) }, nil)
		if err := wB.Arm(rcB); err != nil {
			t.Fatal(err)
		}
		if !wA.Cancel() { // the late backstop of the closed socket's wait
			t.Fatal("the closed socket's wait had fired")
		}
		if _, err := bc.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wakeB:
		case <-time.After(3 * time.Second):
			t.Fatalf("fd %d reused: the new socket's wait never woke (the old wait's cancel removed it?)", fdB)
		}
		time.Sleep(20 * time.Millisecond)
		if firedA.Load() != 0 || firedB.Load() != 1 {
			t.Fatalf("fired: old wait %d, new wait %d; want 0 and 1", firedA.Load(), firedB.Load())
		}
		_ = bc.Close()
		_ = bs.Close()
		if n := Parked(); n != 0 {
			t.Fatalf("%d waits left registered", n)
		}
		return
	}
}

// Cancel and the socket becoming readable race: exactly one wins, every
// time, and no registration is left behind.
func TestCancelOrFireExactlyOnce(t *testing.T) {
	l := listen(t)
	const n = 200
	var fired, cancelled atomic.Int32
	var wg sync.WaitGroup
	for range n {
		c, s := pair(t, l)
		rc, _ := rawOf(t, s)
		done := make(chan struct{})
		w := NewWaiter(func() { fired.Add(1); close(done) }, nil)
		if err := w.Arm(rc); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = c.Write([]byte("x")) }()
		go func() {
			defer wg.Done()
			if w.Cancel() {
				cancelled.Add(1)
				close(done)
			}
		}()
		wg.Wait()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("neither the wake nor the cancel ended the wait")
		}
		if w.Cancel() {
			t.Fatal("a second Cancel won")
		}
		_ = c.Close()
		_ = s.Close()
	}
	if fired.Load()+cancelled.Load() != n {
		t.Fatalf("fired %d + cancelled %d != %d", fired.Load(), cancelled.Load(), n)
	}
	if p := Parked(); p != 0 {
		t.Fatalf("%d waits left registered", p)
	}
	t.Logf("fired %d, cancelled %d", fired.Load(), cancelled.Load())
}

// A wait cancelled before Arm never registers; Arm on a closed socket
// fails and leaves nothing registered.
func TestArmAfterCancelAndOnClosedSocket(t *testing.T) {
	l := listen(t)
	c, s := pair(t, l)
	defer c.Close()
	rc, _ := rawOf(t, s)
	w := NewWaiter(func() { t.Error("a cancelled wait fired") }, nil)
	if !w.Cancel() {
		t.Fatal("Cancel of a new wait lost")
	}
	if err := w.Arm(rc); err != nil || Parked() != 0 {
		t.Fatalf("Arm after Cancel: %v, %d registered", err, Parked())
	}
	_ = s.Close()
	w2 := NewWaiter(func() { t.Error("fired on a closed socket") }, nil)
	if err := w2.Arm(rc); err == nil || Parked() != 0 {
		t.Fatalf("Arm on a closed socket: %v, %d registered", err, Parked())
	}
	_, _ = c.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
}

// The events are read through Go's network poller: no thread sits in
// epoll_wait, and a wake is scheduled like a socket's.
func TestEventsThroughGoPoller(t *testing.T) {
	if !Supported() {
		t.Fatal("no poller on linux")
	}
	for end := time.Now().Add(2 * time.Second); !viaNetpoll.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the epoll fd is not read through Go's poller")
		}
	}
}

// A Slot waits again and again on one registration: every event of a
// re-armed wait arrives, a cancelled wait's late event runs nothing and
// the next wait still wakes, Parked counts only armed waits, and Close
// leaves nothing registered behind.
func TestSlotWaitsAgainAndCloses(t *testing.T) {
	c, s, slot := slotPair(t, nil)
	buf := make([]byte, 16)
	for round := range 3 {
		wakeOnce(t, c, s, slot, round)
	}
	if err := slot.Wait(func() { t.Error("a cancelled wait ran") }); err != nil {
		t.Fatal(err)
	}
	if !slot.Cancel() || slot.Cancel() {
		t.Fatal("Cancel of an armed wait must win once")
	}
	_, _ = c.Write([]byte("y")) // the late event of the cancelled wait
	time.Sleep(50 * time.Millisecond)
	_, _ = s.Read(buf)
	wakeOnce(t, c, s, slot, 3)
	if slot.Close() {
		t.Fatal("Close reported a wait that was not armed")
	}
	waiters.mu.Lock()
	n, slots := len(waiters.byID), waiters.slots
	waiters.mu.Unlock()
	if n != 0 || slots != 0 || Parked() != 0 {
		t.Fatalf("after Close: %d keys, %d slots, %d armed", n, slots, Parked())
	}
	if err := slot.Wait(func() {}); err != ErrSlotClosed {
		t.Fatalf("Wait after Close: %v", err)
	}
}

// A Slot's wait and Close race as a connection's close races its wake:
// exactly one wins every time.
func TestSlotCloseOrFireExactlyOnce(t *testing.T) {
	l := listen(t)
	const n = 200
	var fired, closed atomic.Int32
	for range n {
		c, s := pair(t, l)
		rc, _ := rawOf(t, s)
		slot := NewSlot(rc, nil)
		done := make(chan struct{})
		if err := slot.Wait(func() { fired.Add(1); close(done) }); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = c.Write([]byte("x")) }()
		go func() {
			defer wg.Done()
			if slot.Close() {
				closed.Add(1)
				close(done)
			}
		}()
		wg.Wait()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("neither the wake nor Close ended the wait")
		}
		slot.Close() // as the connection's close does
		_ = c.Close()
		_ = s.Close()
	}
	if fired.Load()+closed.Load() != n || Parked() != 0 {
		t.Fatalf("fired %d + closed %d != %d, %d armed", fired.Load(), closed.Load(), n, Parked())
	}
}

// TestSlotRewaitNoAllocs: once registered, a slot waits again without
// allocating (a stream waits once for every event it relays).
func TestSlotRewaitNoAllocs(t *testing.T) {
	_, _, slot := slotPair(t, nil)
	defer slot.Close()
	ready := func() { t.Error("no byte was sent: the wait must not fire") }
	cycle := func() {
		if err := slot.Wait(ready); err != nil {
			t.Fatal(err)
		}
		if !slot.Cancel() {
			t.Fatal("Cancel lost to a wake nothing sent")
		}
	}
	cycle() // the first Wait registers the socket
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("%v allocations a wait", n)
	}
}

// TestSlotStartsReadyWithItsRunner: a slot's ready is started by the
// runner its maker gave it, once per wake (the proxy's runner keeps its
// workers' stacks: package h1, TestStreamWakesKeepTheirGoroutine).
func TestSlotStartsReadyWithItsRunner(t *testing.T) {
	var started atomic.Int32
	c, s, slot := slotPair(t, func(ready func()) { started.Add(1); go ready() })
	defer slot.Close()
	for round := range 3 {
		wakeOnce(t, c, s, slot, round)
		if n := started.Load(); n != int32(round+1) {
			t.Fatalf("round %d: the runner started %d readies, want %d", round, n, round+1)
		}
	}
}
