package errcode

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGRPCStatus(t *testing.T) {
	cases := map[string]struct {
		status int
		want   int
	}{
		"policy denial":    {http.StatusForbidden, GRPCPermissionDenied},
		"misdirected":      {http.StatusMisdirectedRequest, GRPCPermissionDenied},
		"proxy auth":       {http.StatusProxyAuthRequired, GRPCUnauthenticated},
		"rate limit":       {http.StatusTooManyRequests, GRPCResourceExhausted},
		"upstream":         {http.StatusBadGateway, GRPCUnavailable},
		"sealed vault":     {http.StatusServiceUnavailable, GRPCUnavailable},
		"upstream timeout": {http.StatusGatewayTimeout, GRPCUnavailable},
		"bad request":      {http.StatusBadRequest, GRPCInvalidArgument},
		"loop":             {http.StatusLoopDetected, GRPCInternal},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := (&Error{Status: tc.status}).GRPCStatus(); got != tc.want {
				t.Errorf("GRPCStatus(%d) = %d, want %d", tc.status, got, tc.want)
			}
		})
	}
}

func TestGRPCEncode(t *testing.T) {
	cases := map[string]string{
		"plain ascii":   "ACCESS_DENIED: rule x denies h",
		"percent":       "100%25",
		"newline":       "a%0Ab",
		"utf-8 encoded": "%C3%BC",
		"del":           "%7F",
	}
	in := map[string]string{
		"plain ascii": "ACCESS_DENIED: rule x denies h", "percent": "100%", "newline": "a\nb", "utf-8 encoded": "ü", "del": "\x7f",
	}
	for name, want := range cases {
		if got := grpcEncode(in[name]); got != want {
			t.Errorf("%s: grpcEncode(%q) = %q, want %q", name, in[name], got, want)
		}
	}
}

// rendering is a Renderer wrapped the way the proxy wraps writers.
type rendering struct {
	http.ResponseWriter
	got *Error
}

func (r *rendering) RenderError(e *Error) { r.got = e }

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestWriteHandsErrorsToARenderer(t *testing.T) {
	rec := httptest.NewRecorder()
	r := &rendering{ResponseWriter: rec}
	e := New(http.StatusForbidden, AccessDenied, "rule r denies h", "add a rule")
	e.Write(wrapper{r})
	if r.got != e || rec.Body.Len() != 0 {
		t.Fatalf("renderer got %v, JSON body %q", r.got, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	e.WriteGRPC(rec)
	h := rec.Header()
	if rec.Code != http.StatusOK || h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != "7" ||
		h.Get("Grpc-Message") != "ACCESS_DENIED: rule r denies h (hint: add a rule)" || rec.Body.Len() != 0 {
		t.Errorf("WriteGRPC = %d %v %q", rec.Code, h, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	e.Write(rec) // no renderer: JSON as before
	if rec.Code != http.StatusForbidden || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("Write without a renderer = %d %v", rec.Code, rec.Header())
	}
}
