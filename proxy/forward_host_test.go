package proxy

import "testing"

// urlHost writes the host of the outbound URL as net/url expects it.
func TestURLHost(t *testing.T) {
	cases := []struct {
		host   string
		port   int
		scheme string
		want   string
	}{
		{"api.example", 443, "https", "api.example"},
		{"api.example", 80, "http", "api.example"},
		{"api.example", 8443, "https", "api.example:8443"},
		{"api.example", 443, "http", "api.example:443"},
		{"::1", 443, "https", "[::1]"},
		{"2001:db8::7", 9000, "https", "[2001:db8::7]:9000"},
		{"127.0.0.1", 41901, "https", "127.0.0.1:41901"},
	}
	for _, tc := range cases {
		if got := urlHost(tc.host, tc.port, tc.scheme); got != tc.want {
			t.Errorf("urlHost(%q, %d, %q) = %q, want %q", tc.host, tc.port, tc.scheme, got, tc.want)
		}
	}
}
