package scrub

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// BenchmarkScrubText streams 1 MiB of JSON-ish text with no echo through
// the Replacer of a typical secret (the common case: nothing to replace).
func BenchmarkScrubText(b *testing.B) {
	line := `{"id":"chatcmpl-8x","object":"chat.completion","choices":[{"text":"The answer is 42, see https:\/\/example.com\/a?b=c\u0026d"}]}` + "\n"
	body := []byte(strings.Repeat(line, (1<<20)/len(line)))
	r := NewReplacer(Forms([]byte("sk-proj-4f0c2a77e1d94b8e0a1b2c3d4e5f6a7b")), []byte("[REDACTED]"))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		if _, err := io.Copy(io.Discard, NewReader(bytes.NewReader(body), r, nil)); err != nil {
			b.Fatal(err)
		}
	}
}
