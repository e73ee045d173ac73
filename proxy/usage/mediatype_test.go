package usage

import (
	"mime"
	"testing"
)

func TestMediaTypeSame(t *testing.T) {
	for _, v := range []string{"", "application/json", " Application/JSON ", "text/event-stream", "text/event-stream; charset=utf-8", "a/b/c", "a", "a/", "/b", "a /b", "a/b c", "ä/b", "a@b/c", "text/event-stream;", "x/y\t", "\x00a/b", "a/b=", "a//b"} {
		want, _, _ := mime.ParseMediaType(v)
		if got := mediaType(v); got != want {
			t.Errorf("%q: %q want %q", v, got, want)
		}
	}
}
func FuzzMediaTypeSame(f *testing.F) {
	f.Add("text/event-stream")
	f.Fuzz(func(t *testing.T, v string) {
		want, _, _ := mime.ParseMediaType(v)
		if got := mediaType(v); got != want {
			t.Errorf("%q: %q want %q", v, got, want)
		}
	})
}
