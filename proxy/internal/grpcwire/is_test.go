package grpcwire

import (
	"net/http"
	"testing"
)

func TestIsGRPC(t *testing.T) {
	cases := map[string]struct {
		ct   string
		want bool
	}{
		"grpc":           {"application/grpc", true},
		"grpc+proto":     {"application/grpc+proto", true},
		"grpc+json":      {"application/GRPC+json", true},
		"grpc params":    {"application/grpc;charset=utf-8", true},
		"grpc-web":       {"application/grpc-web", false},
		"grpc-web-text":  {"application/grpc-web-text+proto", false},
		"json":           {"application/json", false},
		"empty":          {"", false},
		"prefix trap":    {"application/grpcx", false},
		"shorter prefix": {"application/grp", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := http.Header{}
			if tc.ct != "" {
				h.Set("Content-Type", tc.ct)
			}
			if got := Is(h); got != tc.want {
				t.Errorf("Is(%q) = %v, want %v", tc.ct, got, tc.want)
			}
		})
	}
}
