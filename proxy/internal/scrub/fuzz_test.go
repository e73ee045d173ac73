package scrub

import (
	"bytes"
	"io"
	"testing"
)

// chunked splits b at the offsets drawn from cuts.
func chunked(b, cuts []byte) *chunks {
	c := &chunks{}
	for _, k := range cuts {
		n := int(k) % (len(b) + 1)
		c.parts = append(c.parts, b[:n])
		b = b[n:]
	}
	c.parts = append(c.parts, b)
	return c
}

// FuzzScrubber: for any secret, body and chunking, the streaming scrubber
// equals bytes.ReplaceAll for the raw secret (when the body holds no
// backslash, which could start an escaped spelling), equals the one-shot
// Scan and the naive reference (naiveEscScrub) for all forms, and leaves no
// form of the secret in its output.
func FuzzScrubber(f *testing.F) {
	f.Add([]byte(testSecret), []byte("echo: "), []byte(" done"), []byte{3, 9, 1}, uint8(0))
	f.Add([]byte("aaaaaaaa"), []byte("aaaa"), []byte("aaaaaaa"), []byte{7, 7, 7, 7}, uint8(1))
	f.Add([]byte("sk-0123456789"), []byte("data: "), []byte("\n\n"), []byte{0, 1, 2, 200}, uint8(5))
	f.Add([]byte("pw:with/slash+plus"), []byte{}, []byte("&x=1"), []byte{4}, uint8(9))
	f.Fuzz(func(t *testing.T, secret, a, b, cuts []byte, which uint8) {
		if len(secret) < MinLen || len(secret) > 256 || len(cuts) > 64 {
			return
		}
		repl := []byte("[REDACTED:p]")
		forms := Forms(secret)
		form := forms[int(which)%len(forms)]
		body := bytes.Join([][]byte{a, form, b, secret, a}, nil)

		raw := NewReplacer([][]byte{secret}, repl)
		got, err := io.ReadAll(NewReader(chunked(body, cuts), raw, nil))
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.ReplaceAll(body, secret, repl); !bytes.Equal(got, want) && !bytes.ContainsRune(body, '\\') {
			t.Fatalf("raw: streaming %q != ReplaceAll %q", got, want)
		}

		all := NewReplacer(forms, repl)
		got, err = io.ReadAll(NewReader(chunked(body, cuts), all, nil))
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := all.Scan(nil, body, true)
		if !bytes.Equal(got, want) {
			t.Fatalf("forms: streaming %q != one-shot %q", got, want)
		}
		if naive := naiveEscScrub(all.forms, body, repl); !bytes.Equal(want, naive) {
			t.Fatalf("forms: one-shot %q != naive %q", want, naive)
		}
		if whole, _ := all.ReplaceAll(body); !bytes.Equal(whole, want) {
			t.Fatalf("forms: ReplaceAll %q != one-shot %q", whole, want)
		}
		for _, f := range forms {
			// A form that overlaps the replacement text can be re-created
			// by it (as with strings.ReplaceAll); real secrets do not.
			if bytes.ContainsAny(f, "[]") || bytes.Contains(repl, f) {
				return
			}
		}
		for _, f := range forms {
			if bytes.Contains(got, f) {
				t.Fatalf("output %q still contains form %q", got, f)
			}
		}
	})
}
