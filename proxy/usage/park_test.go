package usage

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// waitSource is an upstream body that counts its waits.
type waitSource struct {
	io.Reader
	waits int
}

func (s *waitSource) Close() error        { return nil }
func (s *waitSource) WaitReadable() error { s.waits++; return nil }

// parker counts its parks and says whether it holds bytes.
type parker struct {
	parks int
	holds bool
}

func (p *parker) Park() bool { p.parks++; return !p.holds }

// A metered stream stays parkable (the relay waits in the upstream
// holding no buffer, one write per burst): WaitReadable waits in the
// source only when a Read would reach it, parks the parker only after a
// Read (before, its buffers are fresh), and never waits while the meter
// or the parker holds bytes to return.
func TestWaitingBody(t *testing.T) {
	stream := string(benchStream(3, true))
	m, _ := New(Config{Store: NewMemStore()})
	for _, tc := range []struct {
		name      string
		rewritten bool
		ct        string
		holds     bool // the parker holds bytes
	}{
		{"strip", true, "text/event-stream", false},
		{"sse", false, "text/event-stream", false},
		{"json", false, "application/json", false},
		{"parker holds bytes", true, "text/event-stream", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &waitSource{Reader: &eventReader{evs: splitEvents([]byte(stream))}}
			pk := &parker{holds: tc.holds}
			tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x",
				info: RequestInfo{Endpoint: EndpointChat, Rewritten: tc.rewritten}}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tc.ct}}, Body: src}
			tk.WrapWaiting(resp, src, pk)
			wb, ok := resp.Body.(*WaitingBody)
			if !ok {
				t.Fatalf("body %T, want *WaitingBody", resp.Body)
			}
			if err := wb.WaitReadable(); err != nil || src.waits != 1 || pk.parks != 0 {
				t.Fatalf("first wait: err %v, waits %d, parks %d; want one wait, no park", err, src.waits, pk.parks)
			}
			var got bytes.Buffer
			buf := make([]byte, 7) // short reads: the meter keeps relayed bytes back
			for {
				n, err := wb.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
				waits, parks := src.waits, pk.parks
				_ = wb.WaitReadable()
				held := tc.rewritten && wb.sse != nil && wb.off < len(wb.sse.out)
				switch {
				case held && (src.waits != waits || pk.parks != parks):
					t.Fatalf("waited (%d→%d) or parked (%d→%d) with relayed bytes in the meter", waits, src.waits, parks, pk.parks)
				case !held && !wb.finished && pk.parks != parks+1:
					t.Fatalf("parks %d→%d, want one park before a wait", parks, pk.parks)
				case !held && !wb.finished && (src.waits != waits+1) == !tc.holds:
					t.Fatalf("waits %d→%d with the parker holding bytes=%v", waits, src.waits, tc.holds)
				}
			}
			want := stream
			if tc.rewritten {
				want = string(stripped(t, []byte(stream)))
			}
			if got.String() != want {
				t.Fatalf("relayed\n%q\nwant\n%q", got.String(), want)
			}
			if r := tk.Result(); r == nil || r.Outcome != OutcomeOK && tc.ct == "text/event-stream" {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

// stripped is stream without what include_usage added.
func stripped(t *testing.T, stream []byte) []byte {
	t.Helper()
	s := strings.ReplaceAll(string(stream), `,"usage":null`, "")
	i := strings.Index(s, `data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-2024-08-06","choices":[],"usage"`)
	if i < 0 {
		t.Fatal("no usage chunk")
	}
	j := strings.Index(s[i:], "\n\n")
	return []byte(s[:i] + s[i+j+2:])
}

// WrapWaiting without a source is Wrap.
func TestWrapWaitingWithoutSource(t *testing.T) {
	m, _ := New(Config{Store: NewMemStore()})
	tk := &Ticket{m: m, conf: m.conf.Load(), target: openaiTarget, id: "x", info: RequestInfo{Endpoint: EndpointChat}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader("data: [DONE]\n\n"))}
	tk.WrapWaiting(resp, nil, nil)
	if _, ok := resp.Body.(*Body); !ok {
		t.Fatalf("body %T, want *Body", resp.Body)
	}
}
