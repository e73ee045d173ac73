package h1

import (
	"testing"
)

func TestHeadGuardFraming(t *testing.T) {
	const smuggle = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	cases := map[string]struct {
		raw    string
		refuse bool
	}{
		"content-length only":        {raw: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"},
		"chunked only":               {raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		"both":                       {raw: smuggle, refuse: true},
		"both, odd case and spacing": {raw: "POST / HTTP/1.1\r\ntransfer-encoding:  chunked\r\nCONTENT-LENGTH:3\r\n\r\n", refuse: true},
		"both, bare LF":              {raw: "POST / HTTP/1.1\nContent-Length: 3\nTransfer-Encoding: chunked\n\n", refuse: true},
		"both, TE not chunked":       {raw: "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n", refuse: true},
		"smuggle after a CL body":    {raw: "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + smuggle, refuse: true},
		"smuggle after a chunked body": {
			raw:    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n" + smuggle,
			refuse: true,
		},
		"header text inside a CL body": {
			raw: "POST / HTTP/1.1\r\nContent-Length: 49\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		},
		"header text inside a chunked body": {
			raw: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n31\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		},
		"TLS after CONNECT":            {raw: "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + smuggle},
		"after an upgrade, no 101 yet": {raw: "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + smuggle, refuse: true},
		"keep-alive GETs":              {raw: "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, step := range []int{len(tc.raw), 1, 7} {
				g := &headGuard{max: 64 << 10}
				refused := false
				for b := []byte(tc.raw); len(b) > 0 && !refused; {
					n := min(step, len(b))
					refused = g.feed(b[:n])
					b = b[n:]
				}
				if refused != tc.refuse {
					t.Errorf("step %d: refused = %v, want %v", step, refused, tc.refuse)
				}
			}
		})
	}
}
