package usage

import (
	"bytes"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.sse from the fakes")

// recordings are streams recorded from the fakes (go test -run
// TestRecordedStreams -update rewrites them).
var recordings = map[string]struct{ path, body string }{
	"chat_include_usage.sse": {"/v1/chat/completions", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`},
	"chat_plain.sse":         {"/v1/chat/completions", `{"model":"gpt-4o","stream":true}`},
	"responses.sse":          {"/v1/responses", `{"model":"gpt-5","stream":true}`},
	"messages.sse":           {"/v1/messages", `{"model":"claude-sonnet-4-5","stream":true}`},
}

// TestRecordedStreams: the recorded include_usage stream, stripped, is
// byte for byte the recorded plain stream, and its usage is counted.
func TestRecordedStreams(t *testing.T) {
	if *update {
		up := newFake(t)
		for name, r := range recordings {
			resp, err := http.Post(up.srv.URL+r.path, "application/json", strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err := os.WriteFile("testdata/"+name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	with, err := os.ReadFile("testdata/chat_include_usage.sse")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile("testdata/chat_plain.sse")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(with, plain) {
		t.Fatal("recordings are identical: nothing to strip")
	}
	for _, cuts := range [][]byte{nil, {1}, {5, 80, 13}} {
		got, tl := feedSplit(EndpointChat, DialectOpenAI, true, with, cuts)
		if !bytes.Equal(got, plain) {
			t.Fatalf("stripped recording differs (cuts %v):\n%q\nwant\n%q", cuts, got, plain)
		}
		if tl.oa != (Tokens{Input: usageA.Prompt, Output: usageA.Completion, CachedInput: usageA.Cached, Reasoning: usageA.Reasoning}) {
			t.Errorf("tally %+v", tl.oa)
		}
	}
}
