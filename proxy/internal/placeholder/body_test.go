package placeholder

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// splitReader returns its data in pieces cut at the given offsets.
type splitReader struct {
	data []byte
	cuts []int
	pos  int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if r.pos == len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	for _, c := range r.cuts {
		if c > r.pos {
			end = min(end, c)
			break
		}
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

func readTestdata(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRewriterEverySplit cuts a JSON body into two and three pieces at
// every pair of offsets: each gives the same rewritten body.
func TestRewriterEverySplit(t *testing.T) {
	body := readTestdata(t, "body.json")
	secret := []byte(`tok"en\x`)
	want := bytes.ReplaceAll(body, []byte("{{airlock:"+tgPath+"}}"), EscapeJSON(secret))
	if bytes.Equal(want, body) {
		t.Fatal("testdata holds no placeholder")
	}
	for i := 0; i <= len(body); i++ {
		for j := i; j <= len(body); j++ {
			rw := NewRewriter(&splitReader{data: body, cuts: []int{i, j}}, Only(tgPath, secret), EscapeJSON)
			got, err := io.ReadAll(rw)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("cuts %d,%d: got %q, %v", i, j, got, err)
			}
		}
	}
	got, err := io.ReadAll(NewRewriter(iotest.OneByteReader(bytes.NewReader(body)), Only(tgPath, secret), EscapeJSON))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("one byte at a time: %q, %v", got, err)
	}
}

// TestRewriterRefusesEverySplit: a placeholder for another credential,
// cut anywhere, fails the stream, and no byte of it is passed on.
func TestRewriterRefusesEverySplit(t *testing.T) {
	body := []byte(`{"ok":"{{airlock:` + tgPath + `}}","leak":"{{airlock:other/key}}","after":1}`)
	for i := 0; i <= len(body); i++ {
		rw := NewRewriter(&splitReader{data: body, cuts: []int{i}}, Only(tgPath, []byte("S")), EscapeJSON)
		got, err := io.ReadAll(rw)
		var na *NotAllowedError
		if !errors.As(err, &na) || na.Path != "other/key" || na.Where != "body" {
			t.Fatalf("cut %d: err = %v", i, err)
		}
		if want := `{"ok":"S","leak":"`; string(got) != want {
			t.Fatalf("cut %d: passed on %q, want %q", i, got, want)
		}
		if _, err2 := rw.Read(make([]byte, 8)); !errors.Is(err2, ErrNotAllowed) {
			t.Fatalf("cut %d: error not sticky: %v", i, err2)
		}
	}
}

// TestRewriterHoldsBackLittle feeds, a byte at a time, input made of
// placeholder starts that never close: the rewriter never holds more than
// MaxLen-1 bytes it has read but not returned.
func TestRewriterHoldsBackLittle(t *testing.T) {
	unit := "{{airlock:" + strings.Repeat("a/", MaxPathLen/2-1) + "a"
	src := &countingReader{r: iotest.OneByteReader(strings.NewReader(strings.Repeat(unit, 200)))}
	rw := NewRewriter(src, None, EscapeRaw)
	out := 0
	buf := make([]byte, 7)
	for {
		n, err := rw.Read(buf)
		out += n
		if held := src.n - out; held > MaxLen-1 {
			t.Fatalf("holds back %d bytes", held)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if out != len(unit)*200 {
		t.Fatalf("returned %d bytes, want %d", out, len(unit)*200)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestRewriterSourceError passes a read error through after the bytes
// before it.
func TestRewriterSourceError(t *testing.T) {
	boom := errors.New("boom")
	rw := NewRewriter(io.MultiReader(strings.NewReader("abc{{airl"), iotest.ErrReader(boom)), None, EscapeRaw)
	got, err := io.ReadAll(rw)
	if !errors.Is(err, boom) || string(got) != "abc{{airl" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestBody(t *testing.T) {
	body := readTestdata(t, "body.json")
	secret := []byte("SECRET")
	want := bytes.ReplaceAll(body, []byte("{{airlock:"+tgPath+"}}"), secret)
	t.Run("buffered: exact length", func(t *testing.T) {
		r, n, used, err := Body(bytes.NewReader(body), int64(len(body)), 1<<20, Only(tgPath, secret), EscapeJSON)
		if err != nil || n != int64(len(want)) || len(used) == 0 {
			t.Fatalf("n=%d used=%q err=%v", n, used, err)
		}
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("streamed: chunked", func(t *testing.T) {
		for _, length := range []int64{-1, int64(len(body))} {
			r, n, _, err := Body(bytes.NewReader(body), length, 16, Only(tgPath, secret), EscapeJSON)
			if err != nil || n != -1 {
				t.Fatalf("length %d: n=%d err=%v", length, n, err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("length %d: got %q, %v", length, got, err)
			}
		}
	})
	t.Run("longer than declared", func(t *testing.T) {
		r, n, _, err := Body(bytes.NewReader(body), 4, 16, Only(tgPath, secret), EscapeJSON)
		if err != nil || n != -1 {
			t.Fatalf("n=%d err=%v", n, err)
		}
		if got, _ := io.ReadAll(r); !bytes.Equal(got, want) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("buffered: refused before sending", func(t *testing.T) {
		r, _, _, err := Body(bytes.NewReader(body), int64(len(body)), 1<<20, Only("other/key", secret), EscapeJSON)
		if !errors.Is(err, ErrNotAllowed) || r != nil {
			t.Fatalf("r=%v err=%v", r, err)
		}
	})
}

// FuzzRewriter checks the rewriter against a naive reference: the whole
// input rewritten with strings.ReplaceAll, or, when the input holds a
// placeholder for another credential, a failure after exactly the
// rewritten bytes before it. Reads are cut at offsets from the fuzzer.
func FuzzRewriter(f *testing.F) {
	f.Add([]byte(readTestdata(f, "body.json")), uint16(7), uint16(31), false)
	f.Add([]byte(`{{airlock:a}}{{airlock:b}}`), uint16(1), uint16(12), false)
	f.Add([]byte(`{{{airlock:a}}}{{airlock:a}`), uint16(3), uint16(3), true)
	f.Add([]byte(`x{{airlock:a/b.c}}`), uint16(0), uint16(17), false)
	f.Fuzz(func(t *testing.T, in []byte, c1, c2 uint16, json bool) {
		const path = "a"
		secret := []byte("S{e}")
		esc := EscapeRaw
		if json {
			esc = EscapeJSON
		}
		s := string(in)
		var bad *Ref
		for _, r := range Find(s) {
			if r.Path != path {
				bad = &r
				break
			}
		}
		repl := func(x string) string {
			return strings.ReplaceAll(x, Prefix+path+Suffix, string(esc(secret)))
		}
		cuts := []int{int(c1) % (len(in) + 1), int(c2) % (len(in) + 1)}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		got, err := io.ReadAll(NewRewriter(&splitReader{data: in, cuts: cuts}, Only(path, secret), esc))
		if bad == nil {
			if err != nil || string(got) != repl(s) {
				t.Fatalf("got %q, %v; want %q", got, err, repl(s))
			}
			return
		}
		var na *NotAllowedError
		if !errors.As(err, &na) || na.Path != bad.Path {
			t.Fatalf("err = %v, want refusal of %q", err, bad.Path)
		}
		if want := repl(s[:bad.Start]); string(got) != want {
			t.Fatalf("passed on %q, want %q", got, want)
		}
	})
}

// BenchmarkRewriter measures the streaming rewrite of a 1 MiB JSON-ish
// body, without placeholders (detection only) and with one every 4 KiB.
func BenchmarkRewriter(b *testing.B) {
	plain := bytes.Repeat([]byte(`{"k":"v","n":[1,2,3]},`), (1<<20)/22)
	with := bytes.Clone(plain)
	ph := []byte("{{airlock:" + tgPath + "}}")
	for i := 4096; i < len(with)-len(ph); i += 4096 {
		copy(with[i:], ph)
	}
	for name, body := range map[string][]byte{"none": plain, "every4KiB": with} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				n, err := io.Copy(io.Discard, NewRewriter(bytes.NewReader(body), Only(tgPath, []byte("secret")), EscapeRaw))
				if err != nil || n == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}
