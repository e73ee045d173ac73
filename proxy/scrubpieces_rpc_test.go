package proxy

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/airlock/airlock/certs"
	"github.com/airlock/airlock/policy"
	"github.com/airlock/airlock/proxy/rpc"
	"github.com/airlock/airlock/proxy/rpc/rpctest"
	"github.com/airlock/airlock/vault"
)

// The RPC door's `use http_request` goes through the same outbound
// hygiene and observer chain as proxied requests (issue 16, item 7): the
// agent's Range is stripped, a partial answer and gzip inside gzip are
// refused. (scrubpieces_e2e_test.go plays the same attacks on the HTTP
// door through the real `airlock serve`.)

const piecesSecret = "sk-pieces-0e9d8c7b6a5f4e3d"

// startPiecesRPC runs a Server with the RPC door in front of a TLS
// upstream that echoes the injected secret whole (/v1/file, through
// http.ServeContent), as an unasked 206 slice (/v1/slice?from=), or
// gzipped twice under one Content-Encoding: gzip (/v1/gzip2). It returns
// a logged-in client, the upstream's URL and the Range headers it saw.
func startPiecesRPC(t *testing.T) (*rpctest.Client, string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var ranges []string
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+piecesSecret {
			http.Error(w, "no credential injected", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		for _, k := range []string{"Range", "If-Range"} {
			if v := r.Header.Get(k); v != "" {
				ranges = append(ranges, k+": "+v)
			}
		}
		mu.Unlock()
		doc := []byte(`{"your_key":"` + piecesSecret + `"}`)
		switch r.URL.Path {
		case "/v1/file":
			http.ServeContent(w, r, "key.json", time.Unix(1700000000, 0), bytes.NewReader(doc))
		case "/v1/slice":
			var from int
			_, _ = fmt.Sscan(r.URL.Query().Get("from"), &from)
			from = min(max(from, 0), len(doc))
			to := min(from+6, len(doc))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, len(doc)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(doc[from:to])
		case "/v1/gzip2":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gzipTwice(doc))
		}
	}))
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())

	v, err := vault.Create(filepath.Join(t.TempDir(), "vault"), []byte("pw"), vault.CreateOptions{KDF: vault.FastKDF})
	if err != nil {
		t.Fatal(err)
	}
	agent, seed, err := vault.NewAgent("bot", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = v.Update(func(d *vault.Data) error {
		d.SetCredential(&vault.Credential{Path: "api/key", Value: vault.NewSecret([]byte(piecesSecret))})
		d.SetAgent(agent)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(up.URL, "https://")
	pol, err := policy.Parse("pieces.yaml", []byte(`version: 1
egress:
  allow_networks: ["127.0.0.0/8"]
rules:
  - name: pieces
    agents: [bot]
    host: "`+host+`"
    paths: ["/v1/**"]
    credential: api/key
grants:
  - agents: [bot]
    credentials: ["api/*"]
    actions: [use]
`))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.NewCA("pieces", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Vault: v, Policy: pol, Certs: certs.NewCache(ca, 10), Log: zap.NewNop(), UpstreamRoots: roots,
		RPC: func(s *Server) ConnHandler {
			return rpc.New(s, rpc.Options{Registerer: prometheus.NewRegistry()}).ServeConn
		}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { shutdownQuietly(s) })
	cl := rpctest.Dial(t, l.Addr().String())
	cl.Login("bot", ed25519.NewKeyFromSeed(seed))
	return cl, up.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), ranges...) }
}

func gzipTwice(b []byte) []byte {
	for range 2 {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		b = buf.Bytes()
	}
	return b
}

type piecesResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

// TestRPCHostilePieces: through `use http_request`, Range slices of an
// echo never rebuild the secret (the upstream sees no Range), an unasked
// 206 is refused with UPSTREAM_ERROR, and a body gzipped twice under one
// label is refused.
func TestRPCHostilePieces(t *testing.T) {
	cl, upURL, seen := startPiecesRPC(t)
	call := func(path string, headers map[string]string) (piecesResult, string) {
		raw, code := cl.Call("use", map[string]any{"path": "api/key", "operation": "http_request",
			"params": map[string]any{"method": "GET", "url": upURL + path, "headers": headers}})
		var res piecesResult
		if code == "" {
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatalf("%s: %v: %s", path, err, raw)
			}
		}
		if strings.Contains(string(raw), piecesSecret) {
			t.Fatalf("%s: the answer holds the secret: %s", path, raw)
		}
		return res, code
	}
	docLen := len(`{"your_key":""}`) + len(piecesSecret)

	t.Run("Range slices", func(t *testing.T) {
		var all string
		for from := 0; from < docLen; from += 6 {
			res, code := call("/v1/file", map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", from, from+5)})
			if code != "" || res.Status != http.StatusOK {
				t.Errorf("slice %d: code %q status %d, want the whole (scrubbed) document", from, code, res.Status)
			}
			all += res.Body
		}
		if strings.Contains(all, piecesSecret) {
			t.Errorf("the concatenated slices rebuild the secret: %s", all)
		}
		if s := seen(); len(s) > 0 {
			t.Errorf("the upstream received %q: airlock must strip Range on injected requests", s)
		}
	})
	t.Run("unasked 206", func(t *testing.T) {
		for from := 0; from < docLen; from += 6 {
			if res, code := call(fmt.Sprintf("/v1/slice?from=%d", from), nil); code != rpc.CodeUpstreamError {
				t.Errorf("slice %d: code %q status %d body %q, want UPSTREAM_ERROR", from, code, res.Status, res.Body)
			}
		}
	})
	t.Run("gzip inside gzip", func(t *testing.T) {
		if res, code := call("/v1/gzip2", nil); code != rpc.CodeUpstreamError {
			t.Errorf("code %q status %d, %d-byte body, want UPSTREAM_ERROR", code, res.Status, len(res.Body))
		}
	})
}
