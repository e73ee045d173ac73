package proxy

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/airlock/airlock/proxy/internal/h1"
)

// TestHeadGuardAfterUpgrade: the guard stops only when a 101 is written
// back; an Upgrade answered 200 leaves it on for the next request (issue
// 16 item 9).
func TestHeadGuardAfterUpgrade(t *testing.T) {
	const up = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n"
	const smuggle = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	cases := map[string]struct {
		answers []string // response heads written between the two reads
		refuse  bool
	}{
		"declined with 200":        {answers: []string{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}, refuse: true},
		"100 then 200":             {answers: []string{"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"}, refuse: true},
		"switched with 101":        {answers: []string{"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\n\r\n"}},
		"body bytes look like 101": {answers: []string{"HTTP/1.1 200 OK\r\nContent-Length: 34\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\n"}, refuse: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pr, pw := io.Pipe()
			fc := &fakeConn{r: pr}
			g := testServer().guardHeads(fc, "bot")
			go func() { _, _ = io.WriteString(pw, up) }()
			if _, err := io.ReadFull(g, make([]byte, len(up))); err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.answers {
				_, _ = g.Write([]byte(a))
			}
			go func() { _, _ = io.WriteString(pw, smuggle); pw.Close() }()
			_, err := io.ReadAll(g)
			if got := errors.Is(err, h1.ErrSmuggling); got != tc.refuse {
				t.Errorf("refused = %v (%v), want %v; wrote %q", got, err, tc.refuse, strings.SplitN(fc.w.String(), "\r\n", 2)[0])
			}
		})
	}
}
