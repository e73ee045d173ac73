package rpc

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"
)

func TestUnauthGateEvictsOldest(t *testing.T) {
	cases := map[string]struct {
		max, perSource int
		sources        []string
		evicted        []int // indexes evicted, in order
	}{
		"per source":      {10, 2, []string{"a", "a", "a"}, []int{0}},
		"other source ok": {10, 2, []string{"a", "a", "b"}, nil},
		"total":           {2, 5, []string{"a", "b", "c"}, []int{0}},
		"both":            {3, 2, []string{"a", "b", "a", "a", "c"}, []int{0, 1}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := newUnauthGate(tc.max, tc.perSource)
			var got []int
			for i, src := range tc.sources {
				g.enter(src, func() { got = append(got, i) })
			}
			if len(got) != len(tc.evicted) {
				t.Fatalf("evicted %v, want %v", got, tc.evicted)
			}
			for i := range got {
				if got[i] != tc.evicted[i] {
					t.Fatalf("evicted %v, want %v", got, tc.evicted)
				}
			}
		})
	}
}

func TestUnauthGateLeaveFreesSlot(t *testing.T) {
	g := newUnauthGate(1, 1)
	e, _ := g.enter("a", func() { t.Fatal("evicted after leave") })
	e.leave()
	e.leave() // twice is fine
	if _, n := g.enter("a", func() {}); n != 0 {
		t.Fatalf("evicted %d after leave", n)
	}
}

func TestReadFrameOrID(t *testing.T) {
	frame := func(n uint32, body string) []byte { return append(binary.BigEndian.AppendUint32(nil, n), body...) }
	cases := map[string]struct {
		in     []byte
		max    int
		want   string
		wantID string
		err    error
	}{
		"fits":              {frame(2, "{}"), 16, "{}", "", nil},
		"over, id first":    {frame(100, `{"id":5,"method":"x"`), 16, "", "5", ErrFrameTooLarge},
		"over, string id":   {frame(100, `{"method":"x","id":"q"`), 16, "", `"q"`, ErrFrameTooLarge},
		"over, no id":       {frame(100, `{"method":"x"`), 16, "", "", ErrFrameTooLarge},
		"over, null id":     {frame(100, `{"id":null}`), 16, "", "", ErrFrameTooLarge},
		"over, object id":   {frame(100, `{"id":{"a":1}}`), 16, "", "", ErrFrameTooLarge},
		"over, not json":    {frame(100, `garbage`), 16, "", "", ErrFrameTooLarge},
		"over, nothing yet": {frame(100, ``), 16, "", "", ErrFrameTooLarge},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, id, err := readFrameOrID(bytes.NewReader(tc.in), tc.max)
			if !errors.Is(err, tc.err) || string(got) != tc.want || string(id) != tc.wantID {
				t.Fatalf("readFrameOrID = %q, id %q, %v; want %q, id %q, %v", got, id, err, tc.want, tc.wantID, tc.err)
			}
		})
	}
}

// FuzzProbeID: the id read from an oversize frame's first bytes is never
// null and always a valid JSON number or string.
func FuzzProbeID(f *testing.F) {
	for _, s := range []string{`{"id":1}`, `{"id":"x","method":"m"}`, `{"method":"m","id":null}`, `{`, `[1]`, `{"id":{}}`, `{"a":[1,2,{"id":3}],"id":4}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id := probeID(b)
		if id == nil {
			return
		}
		var v any
		if err := json.Unmarshal(id, &v); err != nil {
			t.Fatalf("probeID(%q) = %q: not JSON", b, id)
		}
		switch v.(type) {
		case float64, string:
		default:
			t.Fatalf("probeID(%q) = %q: not a number or string", b, id)
		}
	})
}

func TestHandshakeDeadline(t *testing.T) {
	h := newHarness(t, Options{HandshakeTimeout: 200 * time.Millisecond})
	idle := h.dial()
	start := time.Now()
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(idle.c); err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("idle unauthenticated connection closed after %v, want about 200ms", took)
	}
	// An authenticated connection is not bound by it.
	fc := h.dial()
	fc.login("bot", h.keys["bot"])
	time.Sleep(400 * time.Millisecond)
	fc.ok("list", fc.with(nil), nil)
}

func TestPreAuthFrameCap(t *testing.T) {
	h := newHarness(t, Options{})
	fc := h.dial()
	body := `{"id": 9, "method": "authenticate", "params": {"agent_name": "` + string(bytes.Repeat([]byte("a"), DefaultPreAuthMaxFrame)) + `"}}`
	fc.sendRaw([]byte(body))
	r, err := fc.recv()
	if err != nil || r.Error == nil || string(r.ID) != "9" || r.Error.Code != CodeInvalidRequest {
		t.Fatalf("answer %+v, %v; want INVALID_REQUEST with id 9", r, err)
	}
	// After authentication the same frame is merely a bad agent name.
	fc2 := h.dial()
	fc2.login("bot", h.keys["bot"])
	fc2.sendRaw([]byte(body))
	if r, err := fc2.recv(); err != nil || string(r.ID) != "9" {
		t.Fatalf("authenticated connection: %+v, %v", r, err)
	}
}
