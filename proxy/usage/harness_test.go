package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gateway is a loopback reverse proxy wired the way the airlock pipeline
// wires the meter: Admit at admission (429 on a budget), Wrap on the
// response, Abort when no response comes.
type gateway struct {
	srv     *httptest.Server
	meter   *Meter
	store   Store
	reg     *prometheus.Registry
	metrics *Metrics
	target  Target
	meterOn bool
}

type tkKey struct{}

func newGateway(t testing.TB, up *fake, st Store, budgets []Budget, tg Target) *gateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	mt, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Store: st, Budgets: budgets, Metrics: mt})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{meter: m, store: st, reg: reg, metrics: mt, target: tg, meterOn: true}
	u, _ := url.Parse(up.srv.URL)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		ModifyResponse: func(resp *http.Response) error {
			if tk, _ := resp.Request.Context().Value(tkKey{}).(*Ticket); tk != nil {
				tk.Wrap(resp)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if tk, _ := r.Context().Value(tkKey{}).(*Ticket); tk != nil {
				tk.Abort()
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		FlushInterval: -1,
	}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.meterOn {
			rp.ServeHTTP(w, r)
			return
		}
		tk, err := m.Admit(r.Context(), g.target, r)
		var be *BudgetError
		switch {
		case errors.As(err, &be):
			writeBudgetError(w, be, time.Now())
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tkKey{}, tk)))
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// writeBudgetError renders the error the way the proxy will.
func writeBudgetError(w http.ResponseWriter, be *BudgetError, now time.Time) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Airlock-Error", "BUDGET_EXCEEDED")
	w.Header().Set("Retry-After", strconv.Itoa(be.RetryAfter(now)))
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "BUDGET_EXCEEDED", "message": be.Error(), "detail": be.Error(), "suggestion": be.Suggestion(), "budget": be.Budget, "unit": be.Unit,
		"limit": be.Limit, "used": be.Used, "reset": be.Reset.UTC().Format(time.RFC3339)}})
}

func (g *gateway) post(t *testing.T, path, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(g.srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// rows returns the store's usage rows (MemStore or FileStore).
func rowsOf(t *testing.T, st Store) []Row {
	t.Helper()
	switch s := st.(type) {
	case *MemStore:
		return s.Rows()
	case *FileStore:
		return s.Rows()
	}
	t.Fatalf("store %T has no rows", st)
	return nil
}

// waitRows polls until the store has n requests recorded.
func waitRows(t *testing.T, st Store, n int64) []Row {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows := rowsOf(t, st)
		var got int64
		for _, r := range rows {
			got += r.Requests
		}
		if got >= n {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("recorded %d requests, want %d: %+v", got, n, rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tokenMetric(g *gateway, model, kind string) float64 {
	return testutil.ToFloat64(g.metrics.Tokens.WithLabelValues(g.target.Agent, g.target.Rule, g.target.Credential, model, kind))
}

func fmtRow(r Row) string { return fmt.Sprintf("%+v", r) }
