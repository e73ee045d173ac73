package grpcwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/airlock/airlock/proxy/internal/scrub"
)

const grpcTestSecret = "sk-grpc-5e6f7a8b9c0d1e"

func grpcFrame(flag byte, msg string) []byte {
	b := make([]byte, 5, 5+len(msg))
	b[0] = flag
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// scrubGRPCBytes runs body through the gRPC scrubber.
func scrubGRPCBytes(body []byte) ([]byte, error) {
	r := scrub.NewReplacer(scrub.Forms([]byte(grpcTestSecret)), []byte("[REDACTED:t]"))
	resp := &http.Response{Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
	if err := Scrub(resp, r, func(int) {}, func() {}); err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// grpcFrames splits a gRPC body into its messages; ok is false when it is
// not well framed.
func grpcFrames(b []byte) (msgs []string, ok bool) {
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b[1:5])
		if uint32(len(b)-5) < n {
			return nil, false
		}
		msgs, b = append(msgs, string(b[5:5+n])), b[5+n:]
	}
	return msgs, true
}

func TestGRPCScrubBody(t *testing.T) {
	cases := map[string]struct {
		in      []byte
		want    []string
		wantErr error
	}{
		"no echo":        {in: grpcFrame(0, "hello"), want: []string{"hello"}},
		"echo reframed":  {in: append(grpcFrame(0, "a "+grpcTestSecret+" b"), grpcFrame(0, "next")...), want: []string{"a [REDACTED:t] b", "next"}},
		"empty message":  {in: grpcFrame(0, ""), want: []string{""}},
		"empty body":     {in: nil},
		"compressed":     {in: grpcFrame(1, "gz"), wantErr: errGRPCCompressed},
		"truncated":      {in: grpcFrame(0, "hello")[:7], wantErr: io.ErrUnexpectedEOF},
		"truncated head": {in: []byte{0, 0}, wantErr: io.ErrUnexpectedEOF},
		"too large":      {in: []byte{0, 0xff, 0xff, 0xff, 0xff}, wantErr: errGRPCTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := scrubGRPCBytes(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			msgs, ok := grpcFrames(out)
			if !ok || len(msgs) != len(tc.want) {
				t.Fatalf("out %q: frames %q (ok %v), want %q", out, msgs, ok, tc.want)
			}
			for i := range msgs {
				if msgs[i] != tc.want[i] {
					t.Errorf("message %d = %q, want %q", i, msgs[i], tc.want[i])
				}
			}
		})
	}
}

// FuzzGRPCScrub: whatever the upstream sends, the scrubber never panics,
// and what it passes is well framed, message for message, without the
// secret.
func FuzzGRPCScrub(f *testing.F) {
	f.Add(grpcFrame(0, "hello"))
	f.Add(append(grpcFrame(0, "x"+grpcTestSecret), grpcFrame(0, grpcTestSecret[:5])...))
	f.Add(grpcFrame(1, "gz"))
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := scrubGRPCBytes(body)
		if err != nil {
			return
		}
		in, ok := grpcFrames(body)
		if !ok {
			t.Fatalf("a malformed body passed: %q", body)
		}
		msgs, ok := grpcFrames(out)
		if !ok || len(msgs) != len(in) {
			t.Fatalf("out %q not framed like in %q", out, body)
		}
		if bytes.Contains(out, []byte(grpcTestSecret)) {
			t.Fatalf("secret in %q", out)
		}
	})
}
