package proxy

import (
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/airlock/airlock/proxy/door"
)

// meter is an observer of the shape the usage meter has: it wraps the body
// in an io.ReadCloser and sees the stream as the agent reads it.
type meter struct {
	mu    sync.Mutex
	seen  strings.Builder
	rules []string
}

type meterBody struct {
	io.ReadCloser
	m *meter
}

func (b meterBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.m.mu.Lock()
	b.m.seen.Write(p[:n])
	b.m.mu.Unlock()
	return n, err
}

func (m *meter) observe(resp *http.Response, dec *door.Decision) error {
	m.mu.Lock()
	m.rules = append(m.rules, dec.Rule.Name+" "+dec.Credential.Path+" "+dec.Agent)
	m.mu.Unlock()
	resp.Body = meterBody{resp.Body, m}
	return nil
}

// Config.Observers run after the scrubber, once per response, on the
// stream the agent gets: they never see the secret, and an error refuses
// the response.
func TestObserverChain(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.Header().Set("X-Refuse", "1")
		}
		fmt.Fprintf(w, "you sent %s", r.Header.Get("Authorization")) // an echo of the secret
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "https://")
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	m := &meter{}
	refuse := func(resp *http.Response, _ *door.Decision) error {
		if resp.Header.Get("X-Refuse") != "" {
			return newError(http.StatusBadGateway, CodeUpstreamError, "refused by an observer", "")
		}
		return nil
	}
	_, l, ca := inprocServer(t, "bench/key", inprocSecret, "tok", fmt.Sprintf("version: 1\negress:\n  allow_networks: [\"127.0.0.0/8\"]\nrules:\n"+
		"  - name: up\n    host: %q\n    credential: bench/key\n", host),
		Config{Log: zap.NewNop(), UpstreamRoots: upRoots, Observers: []Observer{m.observe, refuse}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := benchClient(roots, http.ProxyURL(mustURL(t, "http://bot:tok@"+l.Addr().String())), 1)
	resp, err := c.Get(up.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "you sent Bearer [REDACTED:bench/key]" {
		t.Fatalf("agent got %q", body)
	}
	m.mu.Lock()
	seen, rules := m.seen.String(), strings.Join(m.rules, ",")
	m.mu.Unlock()
	if seen != string(body) || strings.Contains(seen, inprocSecret) {
		t.Fatalf("observer saw %q, want the scrubbed stream %q", seen, body)
	}
	if rules != "up bench/key bot" {
		t.Fatalf("observer decisions %q", rules)
	}
	resp, err = c.Get(up.URL + "/refuse")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Airlock-Error") != CodeUpstreamError {
		t.Fatalf("refusing observer: %d %s", resp.StatusCode, resp.Header.Get("X-Airlock-Error"))
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
