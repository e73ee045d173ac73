package scrub

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Readers start with small buffers and grow on a bulk read; a secret
// straddling the small buffer's end, the moment of growth or a read
// boundary is scrubbed all the same, in every form.
func TestReaderGrowsWithoutMissingEchoes(t *testing.T) {
	secret := []byte("sk-adaptive-0123456789abcdef")
	forms := Forms(secret)
	r := NewReplacer(forms, []byte("[R]"))
	offsets := []int{0, 1000, SmallCap - 10, SmallCap - 1, SmallCap, SmallCap + 7, ReadSize - 5, ReadSize + SmallCap - 3, 90000}
	var body []byte
	want := 0
	for i, off := range offsets {
		for len(body) < off {
			body = append(body, byte('a'+len(body)%26))
		}
		body = append(body, forms[i%len(forms)]...)
		want++
	}
	body = append(body, strings.Repeat("z", 1000)...)
	readers := map[string]func() io.Reader{
		"bulk":      func() io.Reader { return bytes.NewReader(body) },
		"one byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) },
		"half":      func() io.Reader { return iotest.HalfReader(bytes.NewReader(body)) },
		"sse-sized": func() io.Reader { return &nReader{b: body, n: 300} },
	}
	for name, src := range readers {
		t.Run(name, func(t *testing.T) {
			echoes := 0
			sr := NewReader(src(), r, func(n int) { echoes += n })
			out, err := io.ReadAll(sr)
			sr.Release()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range forms {
				if bytes.Contains(out, f) {
					t.Fatalf("form %q survived", f)
				}
			}
			if echoes != want || bytes.Count(out, []byte("[R]")) != want {
				t.Fatalf("echoes %d, markers %d, want %d", echoes, bytes.Count(out, []byte("[R]")), want)
			}
		})
	}
}

// A stream of small events keeps the small buffers.
func TestReaderStaysSmallForEvents(t *testing.T) {
	r := NewReplacer(Forms([]byte("sk-adaptive-0123456789abcdef")), []byte("[R]"))
	events := strings.Repeat("data: {\"token\":\"hello\"}\n\n", 200)
	sr := NewReader(&nReader{b: []byte(events), n: 26}, r, nil)
	if _, err := io.ReadAll(sr); err != nil {
		t.Fatal(err)
	}
	if cap(sr.in) != SmallCap {
		t.Fatalf("in buffer grew to %d for small events", cap(sr.in))
	}
	sr.Release()
}

// nReader returns b n bytes per Read, as a stream's events arrive.
type nReader struct {
	b []byte
	n int
}

func (p *nReader) Read(q []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	k := copy(q[:min(len(q), p.n)], p.b)
	p.b = p.b[k:]
	return k, nil
}

// gatedReader says when a Read starts, then waits for the gate.
type gatedReader struct {
	entered chan struct{}
	gate    chan []byte
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.entered <- struct{}{}
	b, ok := <-g.gate
	if !ok {
		return 0, io.EOF
	}
	return copy(p, b), nil
}

// A stream waiting for its next event holds only its in buffer (with the
// undecided tail); the out buffer is back in the pool, and events are
// still scrubbed across the wait.
func TestStreamWaitHoldsOneBuffer(t *testing.T) {
	secret := []byte("sk-waiting-0123456789abcdef")
	r := NewReplacer(Forms(secret), []byte("[R]"))
	src := &gatedReader{entered: make(chan struct{}), gate: make(chan []byte)}
	sr := NewReader(src, r, nil)
	defer sr.Release()
	got := make(chan string)
	go func() {
		out, _ := io.ReadAll(sr)
		got <- string(out)
	}()
	events := [][]byte{[]byte("data: a " + string(secret[:10])), []byte(string(secret[10:]) + " b\n\n"), []byte("data: c\n\n")}
	for _, ev := range events {
		<-src.entered // the fill waits on src: its writes happened before
		if sr.out != nil {
			t.Fatalf("waiting stream holds an out buffer of %d bytes", cap(sr.out))
		}
		src.gate <- ev
	}
	<-src.entered
	close(src.gate)
	if out := <-got; out != "data: a [R] b\n\ndata: c\n\n" {
		t.Fatalf("relayed %q", out)
	}
}
