package isolate

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestDNSWithResolver: Go's own resolver, pointed at the responder on
// loopback, gets synthetic addresses that map back to the names.
func TestDNSWithResolver(t *testing.T) {
	d := &DNS{Allow: func(n string) bool { return n != "blocked.test" }}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, pc) }()
	defer func() { cancel(); <-done }()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	ctx2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	a1, err := r.LookupNetIP(ctx2, "ip4", "API.example.test")
	if err != nil || len(a1) != 1 || !SyntheticPool.Contains(a1[0]) {
		t.Fatalf("lookup: %v, %v", a1, err)
	}
	if n, ok := d.Name(a1[0]); !ok || n != "api.example.test" {
		t.Fatalf("Name(%v) = %q, %v", a1[0], n, ok)
	}
	a2, _ := r.LookupNetIP(ctx2, "ip4", "api.example.test")
	if len(a2) != 1 || a2[0] != a1[0] {
		t.Fatalf("second lookup %v, want %v", a2, a1)
	}
	if _, err := r.LookupNetIP(ctx2, "ip4", "blocked.test"); err == nil {
		t.Fatal("blocked name resolved")
	}
	if a6, err := r.LookupNetIP(ctx2, "ip6", "api.example.test"); err == nil && len(a6) > 0 {
		t.Fatalf("AAAA answered %v", a6)
	}
}

func TestParseQuery(t *testing.T) {
	good := query(0x1234, "a.Example.test", typeA)
	cases := map[string]struct {
		in   []byte
		ok   bool
		name string
	}{
		"a query":        {in: good, ok: true, name: "a.example.test"},
		"short":          {in: good[:11]},
		"truncated name": {in: good[:16]},
		"response bit":   {in: append([]byte{0, 1, 0x80, 0}, good[4:]...)},
		"two questions":  {in: append(append([]byte{}, good[:4]...), append([]byte{0, 2}, good[6:]...)...)},
		"pointer":        {in: append(append([]byte{}, good[:12]...), 0xc0, 12, 0, 1, 0, 1)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			q, err := ParseQuery(tc.in)
			if (err == nil) != tc.ok || (tc.ok && q.Name != tc.name) {
				t.Fatalf("ParseQuery = %+v, %v", q, err)
			}
		})
	}
}

// query encodes a one-question query.
func query(id uint16, name string, typ uint16) []byte {
	b := []byte{byte(id >> 8), byte(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range splitDots(name) {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, byte(typ>>8), byte(typ), 0, 1)
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func FuzzDNSAnswer(f *testing.F) {
	f.Add(query(1, "api.example.test", typeA))
	f.Add(query(2, "x.test", typeAAAA))
	f.Add(query(3, "x.test", 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := &DNS{}
		resp := d.Answer(b)
		if resp == nil {
			return
		}
		if len(resp) < dnsHeaderLen || resp[2]&0x80 == 0 || resp[0] != b[0] || resp[1] != b[1] {
			t.Fatalf("bad response header % x for % x", resp[:min(len(resp), 12)], b)
		}
		q, err := ParseQuery(b)
		if err == nil && resp[3]&0x0f == rcodeOK && q.Type == typeA {
			a := netip.AddrFrom4([4]byte(resp[len(resp)-4:]))
			if n, ok := d.Name(a); !ok || n != q.Name {
				t.Fatalf("answer %v maps to %q, want %q", a, n, q.Name)
			}
		}
	})
}
