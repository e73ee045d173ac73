package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	cases := map[string]struct {
		in, id, method, code string
	}{
		"valid":             {`{"id":1,"method":"list","params":{"session_id":"s"}}`, "1", "list", ""},
		"string id":         {`{"id":"x","method":"list"}`, `"x"`, "list", ""},
		"no id":             {`{"method":"list"}`, "null", "list", ""},
		"null params":       {`{"id":2,"method":"list","params":null}`, "2", "list", ""},
		"not json":          {`hello`, "null", "", CodeInvalidRequest},
		"empty":             {``, "null", "", CodeInvalidRequest},
		"array":             {`[1]`, "null", "", CodeInvalidRequest},
		"object id":         {`{"id":{},"method":"list"}`, "null", "", CodeInvalidRequest},
		"method wrong type": {`{"id":3,"method":5}`, "3", "", CodeInvalidRequest},
		"no method":         {`{"id":4}`, "4", "", CodeInvalidRequest},
		"params not object": {`{"id":5,"method":"list","params":[1]}`, "5", "list", CodeInvalidRequest},
		"trailing garbage":  {`{"id":6,"method":"list"} x`, "null", "", CodeInvalidRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, e := decodeRequest([]byte(tc.in))
			if string(req.ID) != tc.id {
				t.Errorf("id %s, want %s", req.ID, tc.id)
			}
			switch {
			case tc.code == "" && e != nil:
				t.Fatalf("error %v", e)
			case tc.code != "" && (e == nil || e.Code != tc.code):
				t.Fatalf("error %v, want %s", e, tc.code)
			case tc.code == "" && req.Method != tc.method:
				t.Fatalf("method %q", req.Method)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	frame := func(n uint32, body string) []byte { return append(binary.BigEndian.AppendUint32(nil, n), body...) }
	cases := map[string]struct {
		in   []byte
		want string
		err  error
	}{
		"ok":           {frame(2, "{}"), "{}", nil},
		"empty body":   {frame(0, ""), "", nil},
		"at limit":     {frame(16, strings.Repeat("a", 16)), strings.Repeat("a", 16), nil},
		"over limit":   {frame(17, ""), "", ErrFrameTooLarge},
		"huge claim":   {frame(0xffffffff, ""), "", ErrFrameTooLarge},
		"short header": {[]byte{0, 0}, "", io.ErrUnexpectedEOF},
		"short body":   {frame(5, "ab"), "", io.ErrUnexpectedEOF},
		"clean eof":    {nil, "", io.EOF},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tc.in), 16)
			if !errors.Is(err, tc.err) || (err == nil && string(got) != tc.want) {
				t.Fatalf("readFrame = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestOversizeFrameAnswersWithItsIDOrCloses(t *testing.T) {
	h := newHarness(t, Options{})
	cases := map[string]struct {
		authed bool
		size   uint32
		prefix string
		wantID string // "": closed without an answer
	}{
		"authed, id first":      {true, DefaultMaxFrame + 1, `{"id": 7, "method": "use", "params": {"data": "`, "7"},
		"authed, string id":     {true, 5 << 20, `{"id":"a-1","method":"use"`, `"a-1"`},
		"authed, id after body": {true, 5 << 20, `{"method":"use","params":{"data":"` + strings.Repeat("x", 8<<10), ""},
		"before auth, 64KiB+1":  {false, DefaultPreAuthMaxFrame + 1, `{"id": 3, "method": "authenticate"`, "3"},
		"before auth, no id":    {false, 4 << 20, `xxxx`, ""},
		"before auth, null id":  {false, 4 << 20, `{"id": null, "method": "x"`, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fc := h.dial()
			if tc.authed {
				fc.login("bot", h.keys["bot"])
			}
			hdr := binary.BigEndian.AppendUint32(nil, tc.size)
			// The client keeps sending its body; the answer must still arrive.
			go fc.c.Write(append(hdr, append([]byte(tc.prefix), make([]byte, 512<<10)...)...))
			r, err := fc.recv()
			if tc.wantID == "" {
				if err == nil {
					t.Fatalf("answered %+v; want a close without an answer", r)
				}
				return
			}
			if err != nil || r.Error == nil || r.Error.Code != CodeInvalidRequest || string(r.ID) != tc.wantID {
				t.Fatalf("answer %+v, %v; want id %s", r, err, tc.wantID)
			}
			if _, err := fc.recv(); err == nil {
				t.Fatalf("connection still open")
			}
		})
	}
}

func TestGarbageThenValidOnSameConnection(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	bad := []string{`not json`, `{"id":9,"method":"frobnicate"}`, `{"id":10,"method":5}`, ``}
	for _, b := range bad {
		fc.sendRaw([]byte(b))
		r, err := fc.recv()
		if err != nil || r.Error == nil || r.Error.Code != CodeInvalidRequest {
			t.Fatalf("%q: %+v, %v", b, r, err)
		}
	}
	fc.login("bot", h.keys["bot"])
	fc.ok("list", fc.with(nil), nil)
	if n := metricValue(t, h, "unknown", "invalid", CodeInvalidRequest); n != 4 {
		t.Errorf("invalid requests counted %v, want 4", n)
	}
}

func TestRequestsInOrder(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.bot()
	// Pipeline several requests before reading any answer.
	var buf []byte
	for i := 1; i <= 20; i++ {
		b, _ := json.Marshal(map[string]any{"id": i, "method": "list", "params": fc.with(nil)})
		buf = appendFrame(buf, b)
	}
	if _, err := fc.c.Write(buf); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		r, err := fc.recv()
		if err != nil || string(r.ID) != itoa(i) || r.Error != nil {
			t.Fatalf("answer %d: %+v, %v", i, r, err)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestIdleConnectionClosed(t *testing.T) {
	h := newHarness(t, Options{IdleTimeout: 50 * time.Millisecond})
	fc := h.dial()
	fc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fc.c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read from idle connection: %v, want EOF", err)
	}
}

func TestLargeResultRefused(t *testing.T) {
	resp := response{ID: nullID, Result: map[string]string{"body": strings.Repeat("x", 100)}}
	b := encodeResponse(resp, 64)
	var r wireResponse
	if err := json.Unmarshal(b[4:], &r); err != nil || r.Error == nil || r.Error.Code != CodeInvalidRequest {
		t.Fatalf("%s: %v", b, err)
	}
}

// FuzzFrame feeds arbitrary bytes to the frame reader and request decoder:
// no panic, a frame read is exactly the bytes framed, and decoding always
// yields an id that is valid JSON and either a method or an error.
func FuzzFrame(f *testing.F) {
	files, _ := filepath.Glob("testdata/frames/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(appendFrame(nil, b))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		body, err := readFrame(bytes.NewReader(in), 1<<16)
		if err != nil {
			return
		}
		if !bytes.Equal(in[4:4+len(body)], body) {
			t.Fatal("frame body differs from input")
		}
		req, e := decodeRequest(body)
		if !json.Valid(req.ID) {
			t.Fatalf("id %q is not JSON", req.ID)
		}
		if e == nil && (req.Method == "" || !json.Valid(req.Params)) {
			t.Fatalf("decoded without method or params: %+v", req)
		}
		out := encodeResponse(response{ID: req.ID, Error: e}, DefaultMaxFrame)
		again, err := readFrame(bytes.NewReader(out), DefaultMaxFrame)
		if err != nil || !json.Valid(again) {
			t.Fatalf("answer frame unreadable: %v", err)
		}
	})
}
