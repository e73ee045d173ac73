package scrub

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A Reader parked between every read (as the relay parks a stream while
// it waits for the upstream) scrubs exactly what an unparked one does: a
// form split at any offset across two reads, in every form, is replaced,
// and the undecided tail survives the park.
func TestParkBetweenReadsKeepsTail(t *testing.T) {
	secret := []byte(testSecret)
	forms := Forms(secret)
	r := NewReplacer(forms, []byte("[R]"))
	for _, f := range forms {
		body := append(append([]byte("data: a"), f...), "\n\ndata: end\n\n"...)
		for at := 1; at < len(body); at++ {
			sr := NewReader(&chunks{parts: [][]byte{body[:at], body[at:]}}, r, nil)
			var out []byte
			buf := make([]byte, 4096)
			for {
				if !sr.Park() {
					t.Fatalf("form %q at %d: Park reported bytes waiting with none returned", f, at)
				}
				n, err := sr.Read(buf)
				out = append(out, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			sr.Release()
			if want := "data: a[R]\n\ndata: end\n\n"; string(out) != want {
				t.Fatalf("form %q split at %d: %q, want %q", f, at, out, want)
			}
		}
	}
}

// Park reports false (and keeps its buffers) while scrubbed bytes wait
// to be returned or an error is due: the caller must Read, not wait.
func TestParkRefusesWithBytesOrErrorDue(t *testing.T) {
	r := NewReplacer(Forms([]byte(testSecret)), []byte("[R]"))
	sr := NewReader(bytes.NewReader([]byte("data: hello world\n\n")), r, nil)
	small := make([]byte, 5)
	if n, err := sr.Read(small); n != 5 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	if sr.Park() {
		t.Fatal("parked with scrubbed bytes waiting")
	}
	rest, err := io.ReadAll(sr)
	if err != nil || string(rest) != " hello world\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	if sr.Park() {
		t.Fatal("parked at EOF: the caller would wait for bytes that never come")
	}
	boom := errors.New("boom")
	sr = NewReader(io.MultiReader(bytes.NewReader([]byte("x")), failingReader{boom}), r, nil)
	_, _ = sr.Read(make([]byte, 64))
	if n, err := sr.Read(make([]byte, 64)); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("second read %d, %v", n, err)
	}
	if sr.Park() {
		t.Fatal("parked with an error due")
	}
}

// A parked Reader holds no buffer; Release after Park still ends it.
func TestParkReleasesBuffers(t *testing.T) {
	r := NewReplacer(Forms([]byte(testSecret)), []byte("[R]"))
	sr := NewReader(&chunks{parts: [][]byte{[]byte("data: 1\n\n"), []byte("data: 2\n\n")}}, r, nil)
	if _, err := sr.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if !sr.Park() || sr.in != nil || sr.out != nil {
		t.Fatalf("parked with buffers: in cap %d, out cap %d", cap(sr.in), cap(sr.out))
	}
	got, err := io.ReadAll(sr)
	if err != nil || string(got) != "data: 2\n\n" {
		t.Fatalf("after park: %q, %v", got, err)
	}
	sr.Park()
	sr.Release()
	if _, err := sr.Read(make([]byte, 8)); !errors.Is(err, ErrClosed) && err != io.EOF {
		t.Fatalf("read after release: %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// A new Reader with small buffers holds none until its first fill: a
// stream waiting for its first event (the relay parks it before that
// first Read) costs no scrub buffer, and a Reader read at once still
// scrubs.
func TestNewReaderStartsParked(t *testing.T) {
	r := NewReplacer(Forms([]byte(testSecret)), []byte("[R]"))
	sr := NewReader(&chunks{parts: [][]byte{[]byte("data: a" + testSecret + "\n\n")}}, r, nil)
	if sr.in != nil || sr.out != nil {
		t.Fatalf("new Reader holds buffers: in cap %d, out cap %d", cap(sr.in), cap(sr.out))
	}
	if !sr.Park() {
		t.Fatal("a new Reader refuses to park")
	}
	got, err := io.ReadAll(sr)
	if err != nil || string(got) != "data: a[R]\n\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	sr.Release()
	// A Reader whose longest form needs bulk buffers starts with them.
	long := bytes.Repeat([]byte("k"), SmallCap)
	br := NewReader(bytes.NewReader(nil), NewReplacer(Forms(long), []byte("[R]")), nil)
	if cap(br.in) < ReadSize || cap(br.out) < ReadSize {
		t.Fatalf("bulk Reader: in cap %d, out cap %d", cap(br.in), cap(br.out))
	}
	br.Release()
}

// A stream's Reader, parked between events as the relay parks it, hands
// its buffers to the pool and takes them back without allocating.
func TestParkedEventsAllocateNothing(t *testing.T) {
	r := NewReplacer(Forms([]byte(testSecret)), []byte("[R]"))
	ev := &repeatReader{b: []byte("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")}
	sr := NewReader(ev, r, nil)
	buf := make([]byte, 4096)
	event := func() {
		if !sr.Park() {
			t.Fatal("Park refused between events")
		}
		if n, err := sr.Read(buf); n != len(ev.b) || err != nil {
			t.Fatalf("read %d, %v", n, err)
		}
	}
	event() // the first fill takes the buffers
	if a := testing.AllocsPerRun(200, event); a != 0 {
		t.Fatalf("%.1f allocations an event", a)
	}
}

// repeatReader returns b at every Read.
type repeatReader struct{ b []byte }

func (r *repeatReader) Read(p []byte) (int, error) { return copy(p, r.b), nil }
