package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one way of reaching the upstream: direct, or through a proxy.
type target struct {
	name     string
	proxyURL *url.URL       // nil: direct
	roots    *x509.CertPool // CA the client trusts (upstream's or the proxy's)
	child    proc           // nil: direct
	wantAuth bool           // the upstream must see an injected Authorization
	body     []byte         // nil: requests are GETs; else POSTs of this JSON body
}

// newClient is a well-behaved agent: HTTP/1.1 keep-alive with enough idle
// connections for conc workers.
func (t *target) newClient(conc int) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: t.roots},
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conc + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	if t.proxyURL != nil {
		tr.Proxy = http.ProxyURL(t.proxyURL)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// latencies summarises one measured run.
type latencies struct {
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
}

func summarise(lat []time.Duration, elapsed time.Duration, errs int64) latencies {
	s := latencies{Requests: len(lat), Errors: errs, Seconds: elapsed.Seconds()}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	s.RPS = float64(len(lat)) / elapsed.Seconds()
	s.P50ms = ms(lat[len(lat)*50/100])
	s.P90ms = ms(lat[len(lat)*90/100])
	s.P99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var errNoInjection = errors.New("upstream saw no Authorization header")

// load sends n GETs of u from conc workers and returns each latency.
func (t *target) load(c *http.Client, u string, n, conc int) ([]time.Duration, time.Duration, int64, error) {
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				err := t.get(c, u)
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var err error
	if p := firstErr.Load(); p != nil {
		err = *p
	}
	return lat, elapsed, errs.Load(), err
}

// send GETs u, or POSTs t.body to it.
func (t *target) send(c *http.Client, u string) (*http.Response, error) {
	if t.body == nil {
		return c.Get(u)
	}
	return c.Post(u, "application/json", bytes.NewReader(t.body))
}

func (t *target) get(c *http.Client, u string) error {
	resp, err := t.send(c, u)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d (%s)", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	case t.wantAuth && resp.Header.Get("X-Bench-Auth") != "yes":
		return errNoInjection
	}
	return nil
}
