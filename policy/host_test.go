package policy

import "testing"

func TestSplitTarget(t *testing.T) {
	cases := map[string]struct {
		in   string
		def  int
		host string
		port int
		ok   bool
	}{
		"name":            {"API.Example.COM.", 443, "api.example.com", 443, true},
		"name and port":   {"api.example.com:8443", 443, "api.example.com", 8443, true},
		"bracketed v6":    {"[0:0::1]:80", 443, "::1", 80, true},
		"bare bracket v6": {"[::1]", 80, "::1", 80, true},
		"bad port":        {"h:99999", 443, "", -1, false},
		"letters port":    {"h:x", 443, "", -1, false},
		"empty":           {"", 443, "", 443, false},
		"bad v6":          {"[:::zz]:1", 443, "", 1, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h, p, ok := SplitTarget(tc.in, tc.def)
			if h != tc.host || p != tc.port || ok != tc.ok {
				t.Fatalf("SplitTarget(%q) = %q, %d, %v; want %q, %d, %v", tc.in, h, p, ok, tc.host, tc.port, tc.ok)
			}
		})
	}
}
