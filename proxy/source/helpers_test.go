package source

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/airlock/airlock/proxy/testkit"
)

// clock is a fake clock shared by a fake server and the code under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// observed is a zap logger writing JSON into a buffer, and a registry.
type observed struct {
	mu  sync.Mutex
	buf bytes.Buffer
	log *zap.Logger
	reg *prometheus.Registry
	m   *Metrics
}

func (o *observed) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func newObserved(t testing.TB) *observed {
	o := &observed{reg: prometheus.NewRegistry()}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	o.log = zap.New(zapcore.NewCore(enc, zapcore.AddSync(o), zapcore.DebugLevel))
	m, err := NewMetrics(o.reg)
	if err != nil {
		t.Fatal(err)
	}
	o.m = m
	return o
}

func (o *observed) logs() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *observed) metrics() string {
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// secretForms are the encodings a leaked secret could take.
func secretForms(s string) []string {
	b := []byte(s)
	return []string{s, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)), url.QueryEscape(s), url.PathEscape(s)}
}

// assertNoLeak fails if any form of any secret is in text.
func assertNoLeak(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 4 {
			t.Fatalf("secret %q too short to grep for", s)
		}
		for _, f := range secretForms(s) {
			if strings.Contains(text, f) {
				t.Fatalf("%s leaks a secret (form %q)", what, f)
			}
		}
	}
}

// waitFor is the module's one poll-to-a-deadline helper.
var waitFor = testkit.WaitFor
