package transparent

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// clientHello captures the first flight a real crypto/tls client sends for
// serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		c := tls.Client(b, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""})
		_ = c.Handshake()
		b.Close()
	}()
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	var got []byte
	for {
		n, err := a.Read(buf)
		got = append(got, buf[:n]...)
		if _, perr := ParseSNI(got); !errors.Is(perr, errNeedMore) || err != nil {
			return got
		}
	}
}

func TestParseSNI(t *testing.T) {
	hello := clientHello(t, "API.Example.test.")
	noSNI := clientHello(t, "")
	// The same hello split over two handshake records.
	split := splitRecord(hello, 40)
	cases := map[string]struct {
		in      []byte
		want    string
		wantErr error
	}{
		"real hello":           {in: hello, want: "api.example.test"},
		"split across records": {in: split, want: "api.example.test"},
		"no sni":               {in: noSNI, want: ""},
		"truncated":            {in: hello[:len(hello)/2], wantErr: errNeedMore},
		"header only":          {in: hello[:3], wantErr: errNeedMore},
		"not handshake":        {in: []byte{0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5}, wantErr: ErrBadHello},
		"zero length record":   {in: []byte{0x16, 3, 1, 0, 0}, wantErr: ErrBadHello},
		"server hello":         {in: []byte{0x16, 3, 3, 0, 4, 2, 0, 0, 0}, wantErr: ErrBadHello},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseSNI(tc.in)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("ParseSNI = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// splitRecord re-frames the first record's payload as two records.
func splitRecord(rec []byte, at int) []byte {
	n := int(rec[3])<<8 | int(rec[4])
	payload := rec[5 : 5+n]
	var out []byte
	for _, part := range [][]byte{payload[:at], payload[at:]} {
		out = append(out, 0x16, rec[1], rec[2], byte(len(part)>>8), byte(len(part)))
		out = append(out, part...)
	}
	return out
}

func TestParseHost(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    string
		wantErr error
	}{
		"host header":        {in: "GET / HTTP/1.1\r\nHost: API.example.test:8080\r\n\r\n", want: "api.example.test"},
		"absolute form":      {in: "GET http://x.test/a HTTP/1.1\r\nAccept: */*\r\n\r\n", want: "x.test"},
		"ipv6 literal":       {in: "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", want: "::1"},
		"ipv4 literal":       {in: "GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n", want: "10.0.0.1"},
		"no host":            {in: "GET / HTTP/1.0\r\n\r\n", want: ""},
		"incomplete":         {in: "GET / HTTP/1.1\r\nHost: a.test\r\n", wantErr: errNeedMore},
		"two hosts":          {in: "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", wantErr: ErrBadRequest},
		"space before colon": {in: "GET / HTTP/1.1\r\nHost : a.test\r\n\r\n", wantErr: ErrBadRequest},
		"bad chars":          {in: "GET / HTTP/1.1\r\nHost: a/b.test\r\n\r\n", wantErr: ErrBadRequest},
		"not http/1":         {in: "GET / SPDY/3\r\n\r\n", wantErr: ErrBadRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseHost([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("ParseHost = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseSNI(f *testing.F) {
	f.Add(clientHello(f, "api.example.test"))
	f.Add(clientHello(f, ""))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ParseSNI(b)
		if err != nil && name != "" {
			t.Fatalf("name %q with error %v", name, err)
		}
		if name != "" {
			if c, ok := cleanHost(name); !ok || c != name {
				t.Fatalf("unclean name %q", name)
			}
		}
		// A complete answer never changes when more bytes follow.
		if err == nil {
			again, err2 := ParseSNI(append(append([]byte{}, b...), 0x16, 3, 3))
			if err2 != nil || again != name {
				t.Fatalf("appending bytes changed %q,nil to %q,%v", name, again, err2)
			}
		}
	})
}

func FuzzParseHost(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.test:80\r\n\r\n"))
	f.Add([]byte("GET http://[::1]:8/ HTTP/1.1\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nhost: x\r\nHost: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := ParseHost(b)
		if err != nil && name != "" {
			t.Fatalf("name %q with error %v", name, err)
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c <= ' ' || c == '/' || c == '@' || c >= 0x7f {
				t.Fatalf("host %q holds byte %q", name, c)
			}
		}
		_ = looksHTTP(b)
		_, _ = classify(b)
	})
}
