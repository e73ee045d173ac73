package proxy

import (
	"crypto/tls"
	"net/http"
	"runtime"
	"testing"
)

// BenchmarkConcurrency50 compares 50 concurrent requests from the agent as
// 50 HTTP/1.1 connections with 50 streams over HTTP/2 (one connection:
// Go's transport opens a second only past the server's 250 streams), each
// request injected with a bearer credential, to the same HTTP/1.1
// upstream. ns/op is per request; cpu-ns/op is the CPU time of the whole
// process (client, airlock, upstream) per request.
//
//	go test -run '^$' -bench Concurrency50 -benchtime 20000x ./proxy/
func BenchmarkConcurrency50(b *testing.B) {
	for _, proto := range []string{"h1", "h2"} {
		b.Run(proto, func(b *testing.B) {
			up := benchUpstream(b)
			ip := startInproc(b, up, discard{})
			tr := &http.Transport{
				Proxy:               http.ProxyURL(ip.proxyURL),
				TLSClientConfig:     &tls.Config{RootCAs: ip.roots},
				MaxIdleConnsPerHost: 50,
				DisableCompression:  true,
			}
			if proto == "h1" {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			} else {
				tr.ForceAttemptHTTP2 = true
			}
			b.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr}
			u := up.URL + "/v1/x"
			resp, err := c.Get(u)
			if err != nil {
				b.Fatal(err)
			}
			_ = resp.Body.Close()
			if want := map[string]int{"h1": 1, "h2": 2}[proto]; resp.ProtoMajor != want {
				b.Fatalf("agent spoke %s, want major %d", resp.Proto, want)
			}
			b.SetParallelism((50 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)) // ≈ 50 goroutines
			cpu0 := cpuTime()
			runRequests(b, c, u)
			// CPU time (client, airlock and upstream: one process) per
			// request is steadier than ns/op on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op") // cpuTime: meter_bench_test.go
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
